"""Checks every registered model passes: the contract of `mmrec_cli.models`, on a tiny config.

A new model gets these checks by adding its tiny config to TINY (a test below fails until it does):
a finite scalar loss whose gradients reach what should train, scores of the right shape that do not
depend on how the catalogue is chunked or batched, equal scores after a save and load through
safetensors, a refused over-long history, a finite pre-training loss where the model pre-trains,
and `--init` from a pre-training with another max_len handled as the spec says.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mmrec_cli import models
from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.training import loading, stages
from mmrec_cli.training.loop import TrainConfig

NUM_ITEMS = 20

# tiny settings per model, and the parameters that legitimately get no gradient from the fine-tuning loss
TINY = {
    "sasrec": (dict(max_len=6, hidden=8, layers=1, heads=2, inner=16), ()),
    "gru4rec": (dict(max_len=6, embedding=8, hidden=12, layers=2), ()),
    "bert4rec": (dict(max_len=6, hidden=8, layers=1, heads=2, inner=16), ()),
    "fmlprec": (dict(max_len=6, hidden=8, layers=2), ()),
    "msm4sr": (dict(max_len=6, hidden=8, layers=1, heads=2, inner=16, experts=2, pool_hidden=4), ("proj.",)),
    "missrec": (dict(max_len=6, hidden=8, heads=2, inner=16, interest_ratio=0.2), ()),
    "unisrec": (dict(max_len=6, hidden=8, layers=1, heads=2, inner=16, experts=2), ()),
    "mmmlp": (dict(max_len=6, hidden=8, layers=1, token_hidden=4, channel_hidden=8), ()),
    "alignrec": (dict(embedding=8, knn_k=3, content="raw", enc_chunks=2, enc_hidden=8, enc_layers=1, enc_heads=2), ("encoder.",)),
}


def dataset() -> D.Dataset:
    rng = np.random.default_rng(0)
    seqs = [rng.choice(NUM_ITEMS, size=int(rng.integers(4, 10)), replace=False).tolist() for _ in range(10)]
    return D.from_sequences(seqs, [f"i{i}" for i in range(NUM_ITEMS)], [f"u{u}" for u in range(len(seqs))])


def features(spec: models.ModelSpec) -> dict | None:
    g = torch.Generator().manual_seed(1)
    return {m: torch.randn(NUM_ITEMS, 12, generator=g) for m in spec.modalities} or None


def build(name: str, ds: D.Dataset, **overrides):
    spec = models.get(name)
    cfg = spec.config(**{**TINY[name][0], **overrides})
    torch.manual_seed(0)
    return spec, cfg, stages.recommender(spec, cfg, ds, features(spec))


def eval_batch(ds: D.Dataset, max_len: int) -> dict:
    hist, _, users = B.eval_rows(ds, "valid")
    return B.collate_eval(hist, users, max_len)


def first_batch(spec, cfg, ds, stage="finetune") -> dict:
    return next(iter(spec.train_batches(ds, cfg, TrainConfig(batch_size=8, seed=0), 0, stage)))


def test_every_registered_model_has_a_tiny_config():
    assert set(TINY) == set(models.MODELS)
    for name in models.MODELS:
        assert models.get(name).name == name


@pytest.mark.parametrize("name", list(TINY))
def test_loss_is_a_finite_scalar_and_gradients_reach_what_trains(name):
    ds = dataset()
    spec, cfg, model = build(name, ds)
    loss = model.loss(first_batch(spec, cfg, ds))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    frozen_ok = TINY[name][1]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and not n.startswith(frozen_ok)]
    assert missing == []


@pytest.mark.parametrize("name", list(TINY))
def test_padding_rows_start_at_zero(name):
    """One treatment of the padding row in every model: zero, as nn.Embedding(padding_idx=0) builds it. No
    output reads it (padding follows a row's last item), so a random one only made artifacts differ."""
    _, _, model = build(name, dataset())
    rows = {n: m.weight[m.padding_idx] for n, m in model.named_modules() if isinstance(m, torch.nn.Embedding) and m.padding_idx is not None}
    assert {n: bool((r == 0).all()) for n, r in rows.items()} == {n: True for n in rows}


@pytest.mark.parametrize("name", list(TINY))
def test_scores_have_the_right_shape_and_do_not_depend_on_chunks(name):
    ds = dataset()
    spec, cfg, model = build(name, ds)
    model.loss(first_batch(spec, cfg, ds))  # a graph model takes its training graph from its first batch
    model.eval()
    batch = eval_batch(ds, model.max_len)
    with torch.no_grad():
        users = model.users(batch)
        full = model.score_users(users, torch.arange(NUM_ITEMS))
        parts = torch.cat([model.score_users(users, torch.arange(s, min(s + 7, NUM_ITEMS))) for s in range(0, NUM_ITEMS, 7)], 1)
        some = models.score(model, batch, torch.tensor([3, 0, 19]))
    assert full.shape == (len(batch["user"]), NUM_ITEMS) and torch.isfinite(full).all()
    assert torch.allclose(full, parts, atol=1e-5) and torch.allclose(some, full[:, [3, 0, 19]], atol=1e-5)


@pytest.mark.parametrize("name", list(TINY))
def test_save_and_load_give_equal_scores(name, tmp_path):
    ds = dataset()
    spec, cfg, model = build(name, ds)
    model.loss(first_batch(spec, cfg, ds))
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    torch.manual_seed(123)  # another initialisation, overwritten by the load
    again = spec.build(cfg, ds.num_items, features(spec))
    again.load_state_dict(load_file(str(path)))
    batch = eval_batch(ds, model.max_len)
    with torch.no_grad():
        a = models.score(model.eval(), batch, torch.arange(NUM_ITEMS))
        b = models.score(again.eval(), batch, torch.arange(NUM_ITEMS))
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in TINY if "max_len" in vars(models.get(n).config())])
def test_a_history_longer_than_max_len_is_refused(name):
    ds = dataset()
    _, cfg, model = build(name, ds)
    batch = B.collate_eval([np.arange(cfg.max_len + 1)], [0], cfg.max_len + 1)
    with pytest.raises(AssertionError, match="max_len"):
        model.eval().users(batch)


@pytest.mark.parametrize("name", models.names("pretrain"))
def test_pretraining_loss_is_finite(name):
    ds = dataset()
    spec = models.get(name)
    cfg = spec.config(**TINY[name][0])
    torch.manual_seed(0)
    model = spec.build(cfg, ds.num_items, features(spec))
    loss = model.pretrain_loss(first_batch(spec, cfg, ds, "pretrain"))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()


@pytest.mark.parametrize("name", [n for n in models.names("pretrain") if "max_len" in models.get(n).architecture])
def test_init_with_another_max_len_keeps_the_pretrained_architecture(name):
    ds = dataset()
    spec = models.get(name)
    pre_cfg = spec.config(**TINY[name][0])
    pre = spec.build(pre_cfg, ds.num_items, features(spec))
    meta = {"config": {"model": dataclasses.asdict(pre_cfg)}}
    cfg = loading.resolve_stage(spec, None, [], {"model.max_len": 4, **{f"model.{k}": v for k, v in TINY[name][0].items() if k != "max_len"}})
    kept = loading.keep_architecture(spec, cfg, meta)
    assert "model.max_len = 6 (not 4)" in kept and cfg.model.max_len == 6
    model, _ = stages.finetune(name, ds, features(spec), cfg.model, TrainConfig(epochs=1, batch_size=8), stages.Run(), pre.state_dict())
    assert model.max_len == 6


def test_marked_copies_stay_equal():
    """A class marked `# Copied from mmrec_cli.models.X.Name`, or a method marked `# Copied from
    mmrec_cli.models.X.Class.method`, has the same source as the original."""
    import importlib
    import inspect
    import re
    from pathlib import Path

    classes = methods = 0
    for path in sorted((Path(models.__file__).parent).glob("*.py")):
        text = path.read_text()
        for m in re.finditer(r"# Copied from (mmrec_cli(?:\.\w+)+)\.(\w+).*\n(class \2\b.*?)(?=\n\n\n|\Z)", text, re.S):
            original = inspect.getsource(getattr(importlib.import_module(m.group(1)), m.group(2))).rstrip()
            assert m.group(3).rstrip() == original, f"{path.name}: {m.group(2)} differs from {m.group(1)}"
            classes += 1
        for m in re.finditer(r"# Copied from (mmrec_cli\.models\.\w+)\.(\w+)\.(\w+)\n( +def \3\b.*?)(?=\n\n|\Z)", text, re.S):
            original = inspect.getsource(getattr(getattr(importlib.import_module(m.group(1)), m.group(2)), m.group(3))).rstrip()
            assert m.group(4).rstrip() == original, f"{path.name}: {m.group(3)} differs from {m.group(1)}.{m.group(2)}"
            methods += 1
    assert classes >= 2 and methods >= 4


@pytest.mark.parametrize("name", [n for n in models.names("pretrain") if "max_len" in vars(models.get(n).config())])
def test_finetune_from_an_init_of_another_max_len_is_refused(name):
    """Not a model with half its tensors random: the init's settings must be used (transfer keeps them)."""
    from mmrec_cli.errors import MmrecError

    ds = dataset()
    spec = models.get(name)
    pre = spec.build(spec.config(**TINY[name][0]), ds.num_items, features(spec))
    cfg = spec.config(**{**TINY[name][0], "max_len": 4})
    with pytest.raises(MmrecError, match=r"in the pre-trained model but .* here; build the model with the pre-trained model's settings"):
        stages.finetune(name, ds, features(spec), cfg, TrainConfig(epochs=1, batch_size=8), stages.Run(), pre.state_dict())
