"""MMMLP: shapes, causal token mixing, linear cost in the sequence length, and the CLI path."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.errors import MmrecError
from mmrec_cli.io import feature_file as FE
from mmrec_cli.models import mmmlp as M
from mmrec_cli.models import score

N_ITEMS = 20


def tiny_features(num_items: int = N_ITEMS, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"text": torch.randn(num_items, 12, generator=g), "image": torch.randn(num_items, 10, generator=g)}


def quiet(**kw) -> M.Config:
    base = dict(max_len=10, hidden=8, layers=2, fusion_layers=1, token_hidden=6, channel_hidden=16, dropout=0.0)
    return M.Config(**(base | kw))


def model(cfg=None, seed: int = 0) -> M.Model:
    torch.manual_seed(seed)
    return M.Model(cfg or quiet(), N_ITEMS, tiny_features()).eval()


def tiny_batch() -> dict:
    from conftest import tiny_sequences

    seqs = tiny_sequences(num_users=6, num_items=N_ITEMS)
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(N_ITEMS)], [f"u{u}" for u in range(len(seqs))])
    return next(B.train_batches(ds, 10, 64, 0, 0))


def test_shapes_and_feature_tables_not_saved():
    net = model()
    batch = tiny_batch()
    Bn, L = batch["items"].shape
    assert net.encode(batch["items"]).shape == (Bn, L, 8)
    assert score(net, batch, torch.arange(7)).shape == (Bn, 7)
    assert net.loss(batch).dim() == 0
    assert not any("table" in k for k in net.state_dict())
    proj = model(quiet(modal_dim=4))
    assert proj.mixers["text"].blocks[0].channels[0].in_features == 4
    assert proj.encode(batch["items"]).shape == (Bn, L, 8)
    fo = model(quiet(feature_output=True))
    assert score(fo, batch, torch.arange(7)).shape == (Bn, 7) and fo.loss(batch).dim() == 0
    want = fo.item_emb.weight[3] + fo.out_proj["text"](fo.text_table[3]) + fo.out_proj["image"](fo.image_table[3])
    assert torch.allclose(fo.item_vectors(torch.tensor([2]))[0], want)


def test_token_mixing_is_causal_and_padding_does_not_leak():
    net = model()
    items = torch.randint(1, N_ITEMS + 1, (3, 10))
    h = net.encode(items)
    for j in range(10):
        later = items.clone()
        later[:, j + 1 :] = torch.randint(1, N_ITEMS + 1, (3, 9 - j))
        assert torch.allclose(net.encode(later)[:, : j + 1], h[:, : j + 1], atol=1e-6), j
    # a short batch uses the leading block of the weights: same as padding it to max_len
    short = items[:, :4]
    assert torch.allclose(net.encode(short), net.encode(torch.cat([short, torch.zeros(3, 6, dtype=torch.long)], 1))[:, :4], atol=1e-6)


def test_token_mix_masks_place_hidden_units():
    for n, hidden in ((10, 6), (10, 25), (7, 7)):
        tm = M.CausalTokenMix(n, hidden)
        x = torch.randn(2, n, 3, requires_grad=True)
        y = tm(x)
        for j in range(n):
            (g,) = torch.autograd.grad(y[:, j].sum(), x, retain_graph=True)
            assert g[:, j + 1 :].abs().sum() == 0  # nothing after j reaches position j


def token_mix_params(net: M.Model) -> int:
    return sum(p.numel() for n, p in net.named_parameters() if ".tokens." in n)


def flops(net: M.Model, L: int) -> int:
    items = torch.randint(1, N_ITEMS + 1, (2, L))
    with FlopCounterMode(display=False) as fc:
        net.encode(items)
    return fc.get_total_flops()


def test_cost_is_linear_in_sequence_length():
    lengths = (16, 32, 64, 128)
    nets = [model(quiet(max_len=L, token_hidden=8)) for L in lengths]
    params = [sum(p.numel() for p in n.parameters()) for n in nets]
    tparams = [token_mix_params(n) for n in nets]
    fl = [flops(n, L) for n, L in zip(nets, lengths)]
    # token mixing holds 2 * N * r_N weights (+ biases): exactly linear; everything else is constant
    assert [t - tparams[0] for t in tparams] == [(L - 16) * (tparams[1] - tparams[0]) // 16 for L in lengths]
    assert len({p - t for p, t in zip(params, tparams)}) == 1
    # FLOPs per position are constant (no L x L term anywhere)
    assert len({f // L for f, L in zip(fl, lengths)}) == 1 and all(f % L == 0 for f, L in zip(fl, lengths))


def test_loss_decreases_on_a_tiny_batch():
    torch.manual_seed(0)
    net = M.Model(quiet(), N_ITEMS, tiny_features()).train()
    batch = tiny_batch()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = net.loss(batch).item()
    for _ in range(60):
        opt.zero_grad()
        net.loss(batch).backward()
        opt.step()
    assert net.loss(batch).item() < 0.5 * first


def test_cli_finetune_and_eval(tmp_path):
    from conftest import tiny_sequences
    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    seqs = tiny_sequences(num_users=12, num_items=N_ITEMS)
    ids = [f"i{i}" for i in range(N_ITEMS)]
    D.save(D.from_sequences(seqs, ids, [f"u{u}" for u in range(len(seqs))]), str(tmp_path / "ds.safetensors"), "test", {}, {})
    feats = {k: v.numpy() for k, v in tiny_features().items()}
    FE.save(str(tmp_path / "f.safetensors"), feats, ids, "test", {}, {}, {"text": {"source": "test"}, "image": {"source": "test"}})
    d, fs, out = str(tmp_path / "ds.safetensors"), str(tmp_path / "f.safetensors"), str(tmp_path / "m.safetensors")
    run = CliRunner()
    common = ["--set", "model.hidden=8", "--set", "model.channel_hidden=16", "--set", "model.token_hidden=8", "--max-len", "8"]
    r = run.invoke(app, ["finetune", "mmmlp", d, "--features", fs, "-o", out, "--epochs", "2", *common])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["eval", out, d, "--features", fs, "--split", "test", "-o", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["model"]["name"] == "mmmlp" and 0 <= result["metrics"]["ndcg@10"] <= 1
    r = run.invoke(app, ["finetune", "mmmlp", d, "-o", out])  # no features: a clear error
    assert r.exit_code == 3 and "--features" in r.output


def test_one_modality_drops_the_other_mixer():
    """Text-only data (most public datasets) trains with the text and ID mixers; `modalities` gives the
    paper's single-modality ablations on two-modality data. Text-only features were refused before."""
    batch = tiny_batch()
    text_only = {"text": tiny_features()["text"]}
    for net in (M.Model(quiet(), N_ITEMS, text_only), M.Model(quiet(modalities=("text",)), N_ITEMS, tiny_features())):
        assert set(net.mixers) == {"text", "id"} and net.fuse.in_features == 12 + 8
        loss = net.loss(batch)
        assert torch.isfinite(loss)
        loss.backward()
    with pytest.raises(MmrecError, match="the features file lacks image"):
        M.Model(quiet(modalities=("image",)), N_ITEMS, text_only)
