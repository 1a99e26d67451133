"""The training log OUTPUT.log.jsonl of pretrain, finetune and transfer: one JSON line per epoch, appended as
training goes; a resumed run's log equals an uninterrupted run's but for the wall-clock seconds; the artifact's
bytes do not depend on it (nor on --tensorboard)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli import error_line, run
from test_kill import folders, kill_when

from mmrec_cli.data import dataset as D
from mmrec_cli.io import artifacts
from mmrec_cli.io import feature_file as FE
from mmrec_cli.models import sasrec
from mmrec_cli.training import stages
from mmrec_cli.training.loop import TrainConfig

TINY = ["--batch-size", "4", "--max-len", "8", "--set", "model.hidden=16", "--set", "model.inner=32", "--set", "model.layers=1"]
KEYS = ["epoch", "step", "loss", "valid", "lr", "seconds"]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def timeless(records: list[dict]) -> list[dict]:
    """The records without their wall-clock field."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_finetune_writes_one_line_per_epoch_with_the_history_of_the_artifact(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    out = tmp_path / "m.safetensors"
    r = run("finetune", "sasrec", ds, "-o", out, "--epochs", "3", "--patience", "0", "--seed", "3", *TINY)
    assert r.exit_code == 0, r.output
    log = lines(tmp_path / "m.safetensors.log.jsonl")
    history = artifacts.read_meta(out, "model")["history"]
    assert [list(rec) for rec in log] == [KEYS] * 3
    assert [rec["epoch"] for rec in log] == [0, 1, 2]
    assert [rec["step"] for rec in log] == [3, 6, 9]  # 12 users in batches of 4: 3 optimizer steps an epoch
    assert [rec["loss"] for rec in log] == [h["loss"] for h in history]
    assert [rec["valid"] for rec in log] == [h["valid"] for h in history] and "ndcg@10" in log[0]["valid"]
    assert {rec["lr"] for rec in log} == {0.001}
    assert all(isinstance(rec["seconds"], float) and rec["seconds"] >= 0 for rec in log)


def test_a_fresh_run_starts_the_log_anew(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    log = tmp_path / "m.safetensors.log.jsonl"
    log.write_text('{"epoch": 0, "stale": true}\n' * 5)
    r = run("finetune", "sasrec", ds, "-o", tmp_path / "m.safetensors", "--epochs", "2", *TINY)
    assert r.exit_code == 0, r.output
    assert [rec["epoch"] for rec in lines(log)] == [0, 1] and all("stale" not in rec for rec in lines(log))


def test_an_eval_every_epoch_without_validation_has_no_valid_key(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    r = run("finetune", "sasrec", ds, "-o", tmp_path / "m.safetensors", "--epochs", "4", "--set", "train.eval_every=2", *TINY)
    assert r.exit_code == 0, r.output
    log = lines(tmp_path / "m.safetensors.log.jsonl")
    assert ["valid" in rec for rec in log] == [False, True, False, True]


def test_resumed_log_equals_the_uninterrupted_one(tiny_dataset, tmp_path):
    """In process: a run stopped after epoch 2 of 4 (its checkpoint kept), its log torn by the stop, then resumed."""
    _, ds = tiny_dataset
    cfg = sasrec.Config(max_len=8, hidden=16, layers=1, heads=2, inner=32)

    def train(name: str, epochs: int, resume: bool = False):
        run_ = stages.Run(checkpoint=str(tmp_path / f"{name}.ckpt"), resume=resume, log_file=str(tmp_path / f"{name}.log.jsonl"))
        return stages.finetune("sasrec", ds, None, cfg, TrainConfig(epochs=epochs, batch_size=4, patience=0, seed=7), run_)

    train("whole", 4)
    train("part", 2)
    part = tmp_path / "part.log.jsonl"
    assert len(lines(part)) == 2
    with open(part, "a") as f:
        f.write('{"epoch": 2, "step": 9, "lo')  # a line cut short by the kill
    _, result = train("part", 4, resume=True)
    assert timeless(lines(part)) == timeless(lines(tmp_path / "whole.log.jsonl"))
    assert [rec["loss"] for rec in lines(part)] == [h["loss"] for h in result.history]


def test_kill_9_then_resume_gives_the_uninterrupted_log(tmp_path, monkeypatch):
    """A real process killed after a checkpoint, then resumed with --resume (in process, as the uninterrupted
    run): the same log, line for line, but for the seconds; and the same artifact bytes."""
    rng = np.random.default_rng(3)  # 600 users: an epoch of a tiny SASRec takes most of a second
    seqs = [rng.choice(300, size=int(rng.integers(5, 30)), replace=False).tolist() for _ in range(600)]
    ds = tmp_path / "ds.safetensors"
    D.save(D.from_sequences(seqs, [f"i{i}" for i in range(300)], [f"u{u}" for u in range(600)]), str(ds), {"command": "test"}, {}, {})
    args = ["finetune", "sasrec", str(ds), "-o", "m.safetensors", "--epochs", "5", "--patience", "0", "--batch-size", "32",
            "--set", "model.hidden=16", "--set", "model.inner=32", "--set", "model.layers=1", "--device", "cpu"]
    whole, part = folders(tmp_path)
    monkeypatch.chdir(whole)  # the same relative output name, so the recorded commands are equal
    assert run(*args).exit_code == 0
    ckpt, log = part / "m.safetensors.ckpt", part / "m.safetensors.log.jsonl"
    status = kill_when(args, part, ckpt.exists)
    assert status == -signal.SIGKILL and ckpt.exists() and not (part / "m.safetensors").exists(), "the run finished before it could be killed"
    assert 1 <= len(lines(log)) < 5
    monkeypatch.chdir(part)
    r = run(*args, "--resume")
    assert r.exit_code == 0, r.output
    expected = lines(whole / "m.safetensors.log.jsonl")
    assert len(expected) == 5 and timeless(lines(log)) == timeless(expected)
    assert (part / "m.safetensors").read_bytes() == (whole / "m.safetensors").read_bytes()


def test_the_artifact_bytes_do_not_depend_on_the_log(tiny_dataset, tmp_path, monkeypatch):
    ds, _ = tiny_dataset
    with_log, without = tmp_path / "a", tmp_path / "b"
    with_log.mkdir(), without.mkdir()
    args = ["finetune", "sasrec", ds, "-o", "m.safetensors", "--epochs", "2", *TINY]
    monkeypatch.chdir(with_log)
    assert run(*args).exit_code == 0
    assert len(lines(with_log / "m.safetensors.log.jsonl")) == 2
    monkeypatch.chdir(without)
    monkeypatch.setattr("mmrec_cli.cli.finetune.training_log", lambda out: None)  # no log at all
    assert run(*args).exit_code == 0
    assert sorted(p.name for p in without.iterdir()) == ["m.safetensors"]
    assert (with_log / "m.safetensors").read_bytes() == (without / "m.safetensors").read_bytes()


def test_tensorboard_without_its_package_is_one_line_before_any_work(tiny_dataset, tmp_path, monkeypatch):
    ds, _ = tiny_dataset
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    out = tmp_path / "out"
    r = run("finetune", "sasrec", ds, "-o", out / "m.safetensors", "--epochs", "1", "--tensorboard", out / "tb", *TINY)
    assert r.exit_code == 2
    assert error_line(r) == "error: --tensorboard needs the tensorboard package; install it with `pip install 'mmrec[tensorboard]'`, or leave out --tensorboard"
    assert not out.exists()


def test_tensorboard_folder_that_is_a_file(tiny_dataset, tmp_path):
    pytest.importorskip("tensorboard")
    ds, _ = tiny_dataset
    (tmp_path / "tb").write_text("")
    r = run("finetune", "sasrec", ds, "-o", tmp_path / "m.safetensors", "--epochs", "1", "--tensorboard", tmp_path / "tb", *TINY)
    assert r.exit_code == 6
    assert error_line(r) == f"error: cannot write {tmp_path / 'tb'}: Not a directory; give a folder to --tensorboard"


def test_tensorboard_scalars_leave_the_artifact_unchanged(tiny_dataset, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ds, _ = tiny_dataset
    plain, board = tmp_path / "a", tmp_path / "b"
    plain.mkdir(), board.mkdir()
    args = ["finetune", "sasrec", ds, "-o", "m.safetensors", "--epochs", "2", *TINY]
    monkeypatch.chdir(plain)
    assert run(*args).exit_code == 0
    monkeypatch.chdir(board)
    assert run(*args, "--tensorboard", "tb").exit_code == 0
    assert (plain / "m.safetensors").read_bytes() == (board / "m.safetensors").read_bytes()
    events = EventAccumulator(str(board / "tb"))
    events.Reload()
    log = lines(board / "m.safetensors.log.jsonl")
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(r["epoch"], pytest.approx(r["loss"], rel=1e-6)) for r in log]
    assert [e.value for e in events.Scalars("valid/ndcg@10")] == [pytest.approx(r["valid"]["ndcg@10"], rel=1e-6) for r in log]


def test_pretrain_and_transfer_write_their_logs(tmp_path):
    """MISSRec, tiny: pre-training has no validation; a zero-shot transfer trains no epoch and leaves an empty log."""
    from test_missrec import feats, tiny

    ds = tiny(num_users=16)
    D.save(ds, str(tmp_path / "ds.safetensors"), {"command": "test"}, {}, {})
    FE.save(str(tmp_path / "f.safetensors"), feats(), ds.item_ids, {"command": "test"}, {}, {}, {})
    D.save(tiny(num_users=12, seed=7), str(tmp_path / "tgt.safetensors"), {"command": "test"}, {}, {})
    p = lambda name: tmp_path / name  # noqa: E731
    small = ["--set", "model.hidden=16", "--set", "model.inner=8", "--set", "model.heads=2", "--batch-size", "8"]
    r = run("pretrain", "missrec", p("ds.safetensors"), "--features", p("f.safetensors"), "-o", p("pre.safetensors"), "--epochs", "2", *small)
    assert r.exit_code == 0, r.output
    pre = lines(p("pre.safetensors.log.jsonl"))
    assert [list(rec) for rec in pre] == [["epoch", "step", "loss", "lr", "seconds"]] * 2 and [rec["step"] for rec in pre] == [8, 16]
    assert r.stderr.splitlines()[-1] == f"wrote {p('pre.safetensors')}: pre-trained 2 epochs on 16 users, {ds.num_items} items"
    one = run("pretrain", "missrec", p("ds.safetensors"), "--features", p("f.safetensors"), "-o", p("one.safetensors"), "--epochs", "1", *small)
    assert one.stderr.splitlines()[-1] == f"wrote {p('one.safetensors')}: pre-trained 1 epoch on 16 users, {ds.num_items} items"
    transfer = ["transfer", p("pre.safetensors"), p("tgt.safetensors"), "--features", p("f.safetensors"), *small]
    r = run(*transfer, "-o", p("t.safetensors"), "--epochs", "2")
    assert r.exit_code == 0, r.output
    assert [list(rec) for rec in lines(p("t.safetensors.log.jsonl"))] == [KEYS] * 2
    r = run(*transfer, "-o", p("zero.safetensors"), "--epochs", "0")
    assert r.exit_code == 0, r.output
    assert p("zero.safetensors.log.jsonl").read_text() == ""


def test_the_log_may_not_overwrite_an_input(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    conf = tmp_path / "m.safetensors.log.jsonl"
    conf.write_text("{}")
    r = run("finetune", "sasrec", ds, "-o", tmp_path / "m.safetensors", "--config", conf)
    assert r.exit_code == 6
    assert error_line(r) == f"error: training log {conf} is also the --config file; write to another file"
    assert conf.read_text() == "{}"


def test_seeds_write_one_log_per_run(tiny_dataset, tmp_path):
    ds, _ = tiny_dataset
    r = run("finetune", "sasrec", ds, "-o", tmp_path / "m.safetensors", "--epochs", "1", "--seeds", "1,2", *TINY)
    assert r.exit_code == 0, r.output
    a, b = lines(tmp_path / "m.seed1.safetensors.log.jsonl"), lines(tmp_path / "m.seed2.safetensors.log.jsonl")
    assert len(a) == len(b) == 1 and a[0]["loss"] != b[0]["loss"]
    assert [a[0]["step"], b[0]["step"]] == [3, 3]
