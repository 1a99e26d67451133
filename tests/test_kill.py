"""kill -9 through real processes for `extract` and `pretrain` (the finetune case is in test_reliability.py):
start the command, SIGKILL it once its checkpoint / partial shards exist, rerun it with --resume, and
compare the output bytes with an uninterrupted run's. Neither artifact holds a timestamp, so the bytes
must be equal.

The uninterrupted and the resumed runs go in-process (CliRunner), which saves two interpreter starts
per test; the killed run is a real process. Both runs use the same relative output name in sibling
folders, so the recorded commands are equal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _tiny_models import WORDS, tiny_bert, write_items
from test_reliability import env
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.data import dataset as D
from mmrec_cli.io import feature_file as FE

cli = CliRunner()

# The child runs mmrec with OUTPUT.partial/ written after every batch instead of every 5 seconds, so that a
# few shards exist early and a kill lands between them; what is written, and how it is resumed, is unchanged.
EAGER_PARTIAL = """
import sys
from mmrec_cli.features import partial
_init = partial.Partial.__init__
def _eager(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.flush_seconds = 0.0
partial.Partial.__init__ = _eager
from mmrec_cli.cli.app import app
sys.argv[0] = "mmrec"
app()
"""


def run(*args):
    return cli.invoke(app, [str(a) for a in args])


def kill_when(argv: list[str], cwd: Path, ready: Callable[[], bool], code: str | None = None, after: float = 0.1) -> int:
    """Start `mmrec ARGV` in `cwd`, SIGKILL it `after` seconds past `ready()`; returns its exit status."""
    launcher = ["-c", code] if code else ["-m", "mmrec_cli"]
    proc = subprocess.Popen([sys.executable, *launcher, *argv], cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def folders(tmp_path: Path) -> tuple[Path, Path]:
    whole, part = tmp_path / "whole", tmp_path / "part"
    whole.mkdir(), part.mkdir()
    return whole, part


# ---- extract ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def many_items(path: Path, n: int = 150) -> str:
    rng = np.random.default_rng(0)
    sentence = lambda: " ".join(rng.choice(WORDS, size=int(rng.integers(2, 9))))  # noqa: E731
    return write_items(path, [{"item_id": f"i{k}", "text": [sentence() for _ in range(int(rng.integers(1, 4)))]} for k in range(n)])


def test_extract_killed_then_resumed_gives_the_same_bytes(tmp_path, bert, monkeypatch):
    items = many_items(tmp_path / "items.jsonl")
    # --precision fp32: the killed run is a child process, which conftest's CPU without native bf16 does not reach;
    # on a CPU with AMX its `auto` would be bf16 and the in-process resume's fp32, and the resume is refused.
    args = ["extract", items, "--text", "bert", "--text-model", bert, "--per-sentence", "--batch-size", "1", "--device", "cpu", "--precision", "fp32", "-o", "f.safetensors"]
    whole, part = folders(tmp_path)
    monkeypatch.chdir(whole)
    assert run(*args).exit_code == 0
    shards = lambda: list((part / "f.safetensors.partial").glob("text-*.safetensors"))  # noqa: E731
    status = kill_when(args, part, lambda: len(shards()) >= 3, code=EAGER_PARTIAL)
    assert status == -signal.SIGKILL and shards() and not (part / "f.safetensors").exists(), "the run finished before it could be killed"
    monkeypatch.chdir(part)
    r = run(*args, "--resume")
    assert r.exit_code == 0, r.output
    assert "resuming from f.safetensors.partial" in r.stderr
    assert (part / "f.safetensors").read_bytes() == (whole / "f.safetensors").read_bytes()
    assert not (part / "f.safetensors.partial").exists()


# ---- pretrain --------------------------------------------------------------------------------------


def pretrain_inputs(tmp_path: Path) -> tuple[str, str]:
    """200 users and 300 items with random text and image features: an epoch of a tiny MSM4SR takes about a second."""
    rng = np.random.default_rng(3)
    seqs = [rng.choice(300, size=int(rng.integers(5, 15)), replace=False).tolist() for _ in range(200)]
    ids = [f"i{i}" for i in range(300)]
    ds, feats = tmp_path / "ds.safetensors", tmp_path / "f.safetensors"
    D.save(D.from_sequences(seqs, ids, [f"u{u}" for u in range(len(seqs))]), str(ds), {"command": "test"}, {}, {})
    g = np.random.default_rng(0)
    tensors = {"text": g.standard_normal((300, 12)).astype("f4"), "image": g.standard_normal((300, 16)).astype("f4")}
    FE.save(str(feats), tensors, ids, "test", {}, {}, {"text": {"source": "test"}, "image": {"source": "test-image"}})
    return str(ds), str(feats)


def test_pretrain_killed_mid_epoch_then_resumed_gives_the_same_bytes(tmp_path, monkeypatch):
    ds, feats = pretrain_inputs(tmp_path)
    tiny = ["--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.experts=2", "--set", "model.max_len=10"]
    args = ["pretrain", "msm4sr", ds, "--features", feats, "-o", "pre.safetensors", "--epochs", "6", "--batch-size", "32", *tiny]
    whole, part = folders(tmp_path)
    monkeypatch.chdir(whole)
    assert run(*args).exit_code == 0
    ckpt = part / "pre.safetensors.ckpt"
    status = kill_when(args, part, ckpt.exists, after=0.2)  # into the next epoch
    assert status == -signal.SIGKILL and ckpt.exists() and not (part / "pre.safetensors").exists(), "the run finished before it could be killed"
    monkeypatch.chdir(part)
    r = run(*args, "--resume")
    assert r.exit_code == 0, r.output
    resumed = [line for line in r.stderr.splitlines() if line.startswith("resumed from pre.safetensors.ckpt after epoch ")]
    assert resumed and 1 <= int(resumed[0].rsplit(" ", 1)[1]) < 6, r.stderr
    assert (part / "pre.safetensors").read_bytes() == (whole / "pre.safetensors").read_bytes()
    assert not ckpt.exists()
