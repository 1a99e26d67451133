import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.data.batches import train_windows
from mmrec_cli.io import artifacts, model_file
from mmrec_cli.training import distributed as D

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--max-len", "6", "--set", "model.hidden=16", "--set", "model.inner=32", "--set", "model.layers=1", "--set", "model.dropout=0", "--set", "model.attn_dropout=0", "--patience", "0"]


def test_shard_splits_rows_and_pads_an_empty_share():
    batch = {"items": torch.arange(10).view(5, 2), "targets": torch.arange(10).view(5, 2), "user": torch.arange(5), "pool": torch.arange(3)}
    parts = [list(D.shard([batch], r, 2))[0] for r in range(2)]
    assert parts[0]["user"].tolist() == [0, 2, 4] and parts[1]["user"].tolist() == [1, 3]
    assert parts[0]["pool"].tolist() == [0, 1, 2]  # not per-row: kept whole
    small = {"items": torch.ones(1, 3, dtype=torch.long), "targets": torch.tensor([[1, 2, -100]])}
    one, two = (list(D.shard([small], r, 2))[0] for r in range(2))
    assert "_weightless" not in one and two["_weightless"] is True and two["items"].shape == (1, 3)
    assert D.count_targets(small) == 2 and D.count_targets({"items": torch.ones(4, 2), "num_targets": 7}) == 7


def test_device_and_precision_are_checked(tiny_dataset, tmp_path):
    ds_path, _ = tiny_dataset
    out = tmp_path / "m.safetensors"
    r = runner.invoke(app, ["finetune", "sasrec", str(ds_path), "-o", str(out), "--epochs", "1", "--precision", "fp8"])
    assert r.exit_code == 3 and "precision" in r.stderr and "fp8" in r.stderr
    if not torch.cuda.is_available():
        r = runner.invoke(app, ["finetune", "sasrec", str(ds_path), "-o", str(out), "--epochs", "1", "--device", "cuda"])
        assert r.exit_code == 3 and "no CUDA device is visible" in r.stderr


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cpu(tiny_dataset, tmp_path, precision):
    ds_path, _ = tiny_dataset
    out = tmp_path / "m.safetensors"
    r = runner.invoke(app, ["finetune", "sasrec", str(ds_path), "-o", str(out), "--epochs", "2", "--precision", precision, *SMALL])
    assert r.exit_code == 0, r.output
    meta = artifacts.read_meta(out, "model")
    assert meta["config"]["train"]["precision"] == precision
    assert all(np.isfinite(h["loss"]) for h in meta["history"]) and meta["valid"]["ndcg@10"] > 0


def _odd_batch(ds, max_len=6) -> int:
    """A global batch size that leaves a last batch of one window (one rank gets an empty share)."""
    n = len(train_windows(ds, max_len)[0])
    return next(b for b in range(3, n) if n % b == 1)


@pytest.mark.slow
def test_two_processes_give_the_one_process_result(tmp_path):
    """torchrun, gloo, 2 processes: same losses, validation metrics, weights and test metrics as 1 process."""
    from conftest import tiny_sequences

    from mmrec_cli.data import dataset as Dset

    seqs = tiny_sequences(num_users=30, num_items=40, seed=3)
    ds = Dset.from_sequences(seqs, [f"i{i}" for i in range(40)], [f"u{u}" for u in range(30)])
    ds_path = tmp_path / "ds.safetensors"
    Dset.save(ds, str(ds_path), {"command": "test"}, {}, {})
    args = ["finetune", "sasrec", str(ds_path), "--epochs", "3", "--batch-size", str(_odd_batch(ds)), "--seed", "5", *SMALL]
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    r = runner.invoke(app, [*args, "-o", str(one)])
    assert r.exit_code == 0, r.output
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "mmrec_cli", *args, "-o", str(two), "--nproc", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count("wrote ") == 1  # rank 0 alone reports and writes
    assert not Path(f"{two}.ckpt").exists()
    s1, m1 = model_file.load(str(one))
    s2, m2 = model_file.load(str(two))
    assert m1["best_epoch"] == m2["best_epoch"]
    for h1, h2 in zip(m1["history"], m2["history"], strict=True):
        assert h1["steps"] == h2["steps"]
        assert abs(h1["loss"] - h2["loss"]) < 1e-5
        for k, v in h1["valid"].items():
            assert abs(v - h2["valid"][k]) < 1e-6, k
    for k, v in s1.items():
        assert torch.allclose(v, s2[k], atol=1e-5), k
    res = []
    for m in (one, two):
        r = runner.invoke(app, ["eval", str(m), str(ds_path), "--split", "test", "-o", str(tmp_path / f"{m.stem}.json")])
        assert r.exit_code == 0, r.output
        res.append(json.loads((tmp_path / f"{m.stem}.json").read_text())["metrics"])
    assert res[0] == pytest.approx(res[1], abs=1e-6)


def _run_two(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`mmrec ARGS --nproc 2` in a fresh interpreter (torchrun, gloo); asserts it succeeded."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "mmrec_cli", *args, "--nproc", "2"], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count("wrote ") == 1  # rank 0 alone reports and writes
    return p


def _same_run(one: Path, two: Path, loss_tol: float, metric_tol: float, weight_tol: float) -> None:
    """Two model artifacts of one training: same steps, losses, validation metrics, best epoch, weights.

    Attention's key bias is left out: softmax ignores a shift shared by every key, so its gradient is zero
    but for rounding, which Adam turns into steps of the order of the learning rate (nn.MultiheadAttention
    keeps it as the middle third of in_proj_bias, the models' fused projections as the middle third of qkv.bias)."""
    s1, m1 = model_file.load(str(one))
    s2, m2 = model_file.load(str(two))
    for s in (s1, s2):
        for k in [k for k in s if k.endswith(("in_proj_bias", "qkv.bias"))]:
            s[k] = torch.cat([s[k].chunk(3)[0], s[k].chunk(3)[2]])
    assert m1["best_epoch"] == m2["best_epoch"] and m1["history"]
    for h1, h2 in zip(m1["history"], m2["history"], strict=True):
        assert h1["steps"] == h2["steps"]
        assert abs(h1["loss"] - h2["loss"]) < loss_tol
        for k, v in h1.get("valid", {}).items():  # pre-training validates nothing
            assert abs(v - h2["valid"][k]) < metric_tol, k
    assert s1.keys() == s2.keys()
    for k, v in s1.items():
        assert torch.allclose(v, s2[k], atol=weight_tol), k


def _odd_prefix_batch(ds, max_len: int) -> int:
    """A global batch size that leaves MISSRec (one example per train prefix) a last batch of one."""
    from mmrec_cli.data.batches import prefixes

    n = len(prefixes(ds, max_len)[2])
    return next(b for b in range(3, n) if n % b == 1)


@pytest.mark.slow
def test_transfer_with_two_processes_gives_the_one_process_result(tmp_path):
    """`mmrec transfer PRE TARGET --mode inductive --nproc 2` = 1 process: a tiny MISSRec pre-trained
    here, carried to a target domain with new items; dropout 0 so that neither run draws anything."""
    from test_missrec import feats, tiny

    from mmrec_cli.data import dataset as Dset
    from mmrec_cli.io import feature_file as FE

    src, tgt = tiny(num_users=16), tiny(num_users=18, seed=7)
    p = lambda name: str(tmp_path / name)  # noqa: E731
    Dset.save(src, p("src.safetensors"), {"command": "test"}, {}, {})
    Dset.save(tgt, p("tgt.safetensors"), {"command": "test"}, {}, {})
    FE.save(p("f.safetensors"), feats(), src.item_ids, {"command": "test"}, {}, {}, {})
    arch = ["--set", "model.hidden=16", "--set", "model.inner=8", "--set", "model.heads=2", "--set", "model.max_len=8"]
    r = runner.invoke(app, ["pretrain", "missrec", p("src.safetensors"), "--features", p("f.safetensors"), "-o", p("pre.safetensors"), "--epochs", "1", "--batch-size", "8", *arch])
    assert r.exit_code == 0, r.output
    args = ["transfer", p("pre.safetensors"), p("tgt.safetensors"), "--features", p("f.safetensors"), "--mode", "inductive", "--epochs", "3", "--patience", "0"]
    args += ["--batch-size", str(_odd_prefix_batch(tgt, 8)), "--seed", "5", "--set", "model.dropout=0"]
    r = runner.invoke(app, [*args, "-o", p("one.safetensors")])
    assert r.exit_code == 0, r.output
    _run_two([*args, "-o", p("two.safetensors")], tmp_path)
    assert not Path(p("two.safetensors.ckpt")).exists()
    assert artifacts.read_meta(p("two.safetensors"), "model")["stage"] == "transfer"
    _same_run(tmp_path / "one.safetensors", tmp_path / "two.safetensors", 1e-5, 1e-6, 1e-5)


@pytest.mark.slow
def test_alignrec_with_two_processes_gives_the_one_process_result(tmp_path):
    """`mmrec finetune alignrec --nproc 2` = 1 process, in-batch losses (CCA, REG) switched on.

    Nothing in AlignRec's full-graph propagation stands in the way: every process builds the user
    table from the dataset (not from the users of its share), propagates over the whole TRAIN graph,
    and the gradient is linear in the per-row losses of its share. The in-batch CCA and REG are
    computed by every process over the global batch (`in_batch`), weighted by shares summing to one.
    Only the order of float additions differs (the gradients are summed across processes)."""
    from test_alignrec import tiny_ds, tiny_features

    from mmrec_cli.data import dataset as Dset
    from mmrec_cli.io import feature_file as FE
    from mmrec_cli.models.alignrec_graph import train_pairs

    ds = tiny_ds(num_users=16)
    p = lambda name: str(tmp_path / name)  # noqa: E731
    Dset.save(ds, p("ds.safetensors"), "test", {}, {})
    FE.save(p("f.safetensors"), {k: v.numpy() for k, v in tiny_features().items()}, ds.item_ids, "test", {}, {}, {})
    pairs = len(train_pairs(ds)[0])
    batch = next(b for b in range(5, pairs) if pairs % b == 1)  # one process gets an empty share at the end
    args = ["finetune", "alignrec", p("ds.safetensors"), "--features", p("f.safetensors"), "--epochs", "3", "--patience", "0", "--batch-size", str(batch), "--seed", "5", "--lr", "0.03"]
    args += ["--set", "model.content=raw", "--set", "model.embedding=8", "--set", "model.knn_k=3", "--set", "model.alpha=0.5", "--set", "model.lam=0.5"]
    r = runner.invoke(app, [*args, "-o", p("one.safetensors")])
    assert r.exit_code == 0, r.output
    _run_two([*args, "-o", p("two.safetensors")], tmp_path)
    _same_run(tmp_path / "one.safetensors", tmp_path / "two.safetensors", 1e-5, 1e-6, 1e-5)
    s, _ = model_file.load(p("two.safetensors"))
    assert s["user_emb"].shape == (16, 8) and len(s["ui_users"]) == pairs


def test_to_device_moves_tensors_inside_tuples_too():
    """AlignRec's `in_batch` (a tuple of tensors) must follow the batch to the device ("meta" stands in for a GPU)."""
    from mmrec_cli.data.batches import to_device

    arr = np.arange(3)
    batch = {"user": torch.arange(3), "in_batch": (torch.arange(3), torch.arange(4)), "graph": (arr, arr, 5)}
    out = to_device(batch, "meta")
    assert out["user"].is_meta and all(t.is_meta for t in out["in_batch"])
    assert out["graph"][0] is arr and out["graph"][2] == 5


def test_ddp_leaves_out_unused_parameters_and_feature_buffers(tmp_path, monkeypatch):
    """MSM4SR pre-training under DDP: its ID table (no gradient in pre-training) is not all-reduced and its
    feature buffers are not broadcast at every step; a gradient reaching the ID table later is refused.
    One gloo process stands in for two ranks whose first batches both leave the table unused."""
    import torch.distributed as dist
    from test_msm4sr import model, tiny_batch

    from mmrec_cli.errors import USAGE, MmrecError

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    try:
        monkeypatch.setattr(D, "all_sum", lambda values, ctx: [2 * v for v in values])
        net = model()
        ddp = D.wrap(net, net.pretrain_loss, D.Context(world=2), tiny_batch())
        stacks = {f"model.{m}_stack{s}" for m in ("text", "image") for s in ("", "_mask")}
        assert ddp.parameters_to_ignore == {"model.item_emb.weight", *stacks}
        assert not ddp.find_unused_parameters
        ddp(tiny_batch(seed=1)).backward()
        assert net.item_emb.weight.grad is None and net.proj["text"].weight.grad is not None
        with pytest.raises(MmrecError) as err:
            net.item_emb(torch.tensor([1])).sum().backward()
        assert err.value.code == USAGE
        assert str(err.value) == "--nproc: item_emb.weight was unused by the first batch but a later batch uses it; train with --nproc 1"
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("modalities", [("text", "image"), ("text",)])
def test_msm4sr_pretraining_with_two_processes_gives_the_one_process_result(tmp_path, modalities):
    """`mmrec pretrain msm4sr --nproc 2` = 1 process: the in-batch negatives of NIP (and CMCL) are the whole
    global batch's (gathered from both processes), the ID table and the feature buffers are left out of DDP,
    and a batch size of 5 leaves one process a smaller share; no dropout or mixup, so that neither run draws."""
    from conftest import tiny_sequences
    from test_msm4sr import N_ITEMS, tiny_features

    from mmrec_cli.data import dataset as Dset
    from mmrec_cli.io import feature_file as FE

    ids = [f"i{i}" for i in range(N_ITEMS)]
    ds = Dset.from_sequences(tiny_sequences(num_users=12, num_items=N_ITEMS), ids, [f"u{u}" for u in range(12)])
    p = lambda name: str(tmp_path / name)  # noqa: E731
    Dset.save(ds, p("ds.safetensors"), "test", {}, {})
    # one vector per item: over sentence stacks the pooling's last bias has a zero gradient, which Adam turns into
    # steps of the order of the learning rate from rounding noise alone
    feats = {k: v.numpy() for k, v in tiny_features(stacks=False).items() if k in modalities}
    FE.save(p("f.safetensors"), feats, ids, "test", {}, {}, {m: {"source": m} for m in modalities})
    _same_pretraining(tmp_path, "msm4sr", 5, dict(hidden=8, inner=16, experts=2, max_len=8, dropout=0, attn_dropout=0, adaptor_dropout=0, seq_dropout=0, mixup="false"))


@pytest.mark.slow
@pytest.mark.parametrize("model,packed", [("missrec", False), ("unisrec", False), ("unisrec", True)])
def test_contrastive_pretraining_with_two_processes_gives_the_one_process_result(tmp_path, model, packed):
    """`mmrec pretrain missrec|unisrec --nproc 2` = 1 process: the sequence-item and sequence-sequence losses'
    negatives are the whole global batch's, and the last global batch leaves one process a stand-in row. The
    second view equals the first (no item or feature drop) and there is no dropout, so that neither run draws."""
    from test_missrec import feats, tiny

    from mmrec_cli.data import dataset as Dset
    from mmrec_cli.io import feature_file as FE

    ds = tiny(num_users=16)
    Dset.save(ds, str(tmp_path / "ds.safetensors"), "test", {}, {})
    f = {k: v.numpy() for k, v in feats().items() if model == "missrec" or k == "text"}
    FE.save(str(tmp_path / "f.safetensors"), f, ds.item_ids, "test", {}, {}, {m: {"source": m} for m in f})
    quiet = dict(hidden=16, inner=8, heads=2, max_len=8, dropout=0, item_drop=0)
    quiet |= dict(feature_drop=0) if model == "missrec" else dict(attn_dropout=0, adaptor_dropout=0, noisy_gating="false")
    quiet |= dict(packed="true") if packed else {}  # windows in batches of at most 8 examples: an uneven split too
    _same_pretraining(tmp_path, model, 8 if packed else _odd_prefix_batch(ds, 8), quiet)


def _same_pretraining(tmp_path: Path, model: str, batch_size: int, settings: dict) -> None:
    """`mmrec pretrain MODEL` of tmp_path's ds and f with 1 and with 2 processes: the same run."""
    args = ["pretrain", model, str(tmp_path / "ds.safetensors"), "--features", str(tmp_path / "f.safetensors")]
    args += ["--epochs", "2", "--batch-size", str(batch_size), "--seed", "5", *(a for k, v in settings.items() for a in ("--set", f"model.{k}={v}"))]
    r = runner.invoke(app, [*args, "-o", str(tmp_path / "one.safetensors")])
    assert r.exit_code == 0, r.output
    _run_two([*args, "-o", str(tmp_path / "two.safetensors")], tmp_path)
    _same_run(tmp_path / "one.safetensors", tmp_path / "two.safetensors", 1e-5, 1e-6, 1e-5)
