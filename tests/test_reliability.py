"""Interrupted runs, reproducibility and safe loading, through real processes."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mmrec_cli.data import dataset as D

ROOT = Path(__file__).resolve().parents[1]


def big_dataset(path: Path) -> None:
    """Enough users that an epoch of a tiny SASRec takes a noticeable fraction of a second."""
    rng = np.random.default_rng(3)
    seqs = [rng.choice(300, size=int(rng.integers(5, 40)), replace=False).tolist() for _ in range(3000)]
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(300)], [f"u{u}" for u in range(len(seqs))])
    D.save(ds, str(path), {"command": "test"}, {}, {})


def finetune_cmd(ds: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mmrec_cli", "finetune", "sasrec", str(ds), "-o", str(out), "--epochs", "6", "--patience", "0", "--batch-size", "64", "--set", "model.hidden=16", "--set", "model.inner=32", "--set", "model.layers=1", *extra]


def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def test_kill_9_mid_epoch_then_resume_gives_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = tmp_path / "ds.safetensors"
    big_dataset(ds)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref = tmp_path / "a" / "m.safetensors"
    out = tmp_path / "b" / "m.safetensors"
    os.chdir(tmp_path / "a")  # the same relative output name, so the recorded commands are equal
    subprocess.run(finetune_cmd(ds, Path("m.safetensors")), check=True, env=env(), capture_output=True)
    os.chdir(tmp_path / "b")
    ckpt = Path(f"{out}.ckpt")
    proc = subprocess.Popen(finetune_cmd(ds, Path("m.safetensors")), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.1)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not out.exists(), "the run finished before it could be killed"
    subprocess.run(finetune_cmd(ds, Path("m.safetensors"), "--resume"), check=True, env=env(), capture_output=True)
    assert out.read_bytes() == ref.read_bytes()


def test_library_never_unpickles():
    pattern = re.compile(r"import pickle|pickle\.loads?\(|torch\.load\(|numpy\.load\(|np\.load\(|allow_pickle=True")
    offenders = [str(p) for p in (ROOT / "mmrec_cli").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_an_output_naming_an_input_leaves_the_input_byte_for_byte(tmp_path):
    """`prepare c.csv -o c.csv` replaced the interactions with the dataset and exited 0."""
    csv = tmp_path / "c.csv"
    csv.write_bytes(b"user_id,item_id,timestamp\r\nu0,i0,1\r\nu0,i1,2\r\nu0,i2,3\r\n")
    before = csv.read_bytes()
    (tmp_path / "link.safetensors").symlink_to(csv)
    for out in ("c.csv", "link.safetensors"):
        r = subprocess.run([sys.executable, "-m", "mmrec_cli", "prepare", "c.csv", "-o", out], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
        assert (r.returncode, r.stdout, r.stderr) == (6, "", f"error: -o {out} is also the SOURCE input; write to another file\n")
        assert csv.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "link.safetensors"]
