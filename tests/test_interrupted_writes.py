"""Writes that cannot finish: a full disk, SIGTERM, and the temporary files of a run killed outright."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_reliability import big_dataset, env
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.io import atomic

cli = CliRunner()


def write_csv(path: Path) -> Path:
    path.write_text("user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u + k) % 7},{k}\n" for u in range(5) for k in range(4)))
    return path


def test_a_full_disk_on_an_artifact_write_is_exit_6_and_leaves_nothing(tmp_path, monkeypatch):
    import safetensors.numpy

    def full(*args, **kwargs):  # what safetensors raises when the disk fills up during the write
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    out = tmp_path / "ds.safetensors"
    r = cli.invoke(app, ["prepare", str(write_csv(tmp_path / "c.csv")), "-o", str(out)])
    assert r.exit_code == 6, r.output
    assert r.output.strip().splitlines()[-1] == f"error: cannot write {out}: no space left on device; free some space and run again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]


@pytest.mark.parametrize(("code", "text"), [(122, "disk quota exceeded; free some space and run again"), (30, "read-only file system; give an output path on a writable disk")])
def test_quota_and_read_only_disks_say_so(tmp_path, code, text):
    err = atomic.as_os_error(RuntimeError(f"I/O error: whatever (os error {code})"))
    assert str(atomic.io_error(err, tmp_path / "x")) == f"cannot write {tmp_path / 'x'}: {text}"
    assert atomic.as_os_error(RuntimeError("no number here")) is None


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_runs_temporary_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "m.safetensors"
    stale = tmp_path / f".m.safetensors.{dead_pid()}.abc123.tmp"
    live = tmp_path / f".m.safetensors.{atomic.os.getppid()}.def456.tmp"  # a running process: maybe still writing
    other = tmp_path / f".n.safetensors.{dead_pid()}.abc123.tmp"  # another target's: not ours to touch
    for p in (stale, live, other):
        p.write_bytes(b"x" * 100)
    atomic.write_text(target, "done")
    assert target.read_text() == "done"
    assert not stale.exists() and live.exists() and other.exists()


def test_sigterm_removes_the_temporary_output_and_exits_130(tmp_path):
    ds = tmp_path / "ds.safetensors"
    big_dataset(ds)
    model = tmp_path / "m.safetensors"
    r = cli.invoke(app, ["finetune", "sasrec", str(ds), "-o", str(model), "--epochs", "1", "--set", "model.hidden=8", "--set", "model.inner=8", "--set", "model.layers=1"])
    assert r.exit_code == 0, r.output
    histories = tmp_path / "h.jsonl"
    histories.write_text("".join(json.dumps({"items": [f"i{(k + j) % 300}" for j in range(20)]}) + "\n" for k in range(200_000)))
    out = tmp_path / "recs.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "mmrec_cli", "recommend", str(model), str(ds), "--input", str(histories), "-o", str(out)],
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    temporary = lambda: list(tmp_path.glob(".recs.jsonl.*.tmp"))  # noqa: E731
    while not temporary() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert temporary(), "the run ended before it wrote anything"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted; outputs were not written")
    assert not temporary() and not out.exists()


def test_an_interrupted_extract_says_how_to_continue(tmp_path):
    from _tiny_models import tiny_bert
    from test_kill import many_items

    from mmrec_cli.features.extract import Hooks, Options, extract

    bert = tiny_bert(tmp_path / "bert")
    items = many_items(tmp_path / "items.jsonl", n=20)
    notes: list[str] = []

    class Stop:  # the progress bar of the text pass: Ctrl-C after the third batch
        def __init__(self, *args, **kwargs):
            self.calls = 0

        def __enter__(self):
            return self.advance

        def __exit__(self, *exc):
            return False

        def advance(self, n=1):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt

    out = tmp_path / "f.safetensors"
    with pytest.raises(KeyboardInterrupt):
        extract(items, str(out), Options(text="bert", text_model=str(bert), batch_size=2, device="cpu"), hooks=Hooks(note=notes.append, bar=Stop))
    assert notes[-1] == f"the finished batches are kept in {out}.partial/; run the same command with --resume to continue"
    assert list((tmp_path / "f.safetensors.partial").glob("text-*.safetensors")) and not out.exists()
