import json
import os
import struct

import numpy as np
import pytest
import torch

from mmrec_cli.errors import MmrecError
from mmrec_cli.io import artifacts, atomic


def test_roundtrip_keeps_tensors_and_metadata(tmp_path):
    p = tmp_path / "a.safetensors"
    artifacts.save(p, {"x": torch.arange(6).reshape(2, 3), "y": np.ones(2, dtype=np.float32)}, "dataset", {"command": "c", "config": {"k": 1}})
    tensors, meta = artifacts.load(p, kind="dataset")
    assert tensors["x"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert meta["kind"] == "dataset" and meta["config"] == {"k": 1} and meta["schema"] == artifacts.SCHEMA
    assert "torch" in meta["versions"] and "mmrec" in meta["versions"]


def test_wrong_kind_is_refused(tmp_path):
    p = tmp_path / "a.safetensors"
    artifacts.save(p, {"x": torch.zeros(1)}, "features", {})
    with pytest.raises(MmrecError, match="expected a model artifact, got a features artifact") as e:
        artifacts.load(p, kind="model")
    assert e.value.code == 5


def test_other_schema_is_refused(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "old.safetensors"
    save_file({"x": np.zeros(1)}, str(p), metadata={"mmrec": json.dumps({"schema": 99, "kind": "model"})})
    with pytest.raises(MmrecError, match="artifact schema 99 is not supported"):
        artifacts.read_meta(p)


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    from safetensors.numpy import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"x": np.zeros(1)}, str(plain))
    with pytest.raises(MmrecError, match="without mmrec metadata"):
        artifacts.read_meta(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 10**12) + b"xx")
    with pytest.raises(MmrecError, match="not a safetensors artifact"):
        artifacts.read_meta(junk)
    with pytest.raises(MmrecError, match="no such file"):
        artifacts.read_meta(tmp_path / "missing.safetensors")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_outputs_follow_the_umask_not_mkstemp(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic.write_text(tmp_path / "out.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == mode


def test_disk_full_is_one_clear_error(tmp_path, monkeypatch):
    import errno
    import os

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(MmrecError, match="no space left on device; free some space") as e:
        atomic.write_text(tmp_path / "o.json", "{}")
    assert e.value.code == 6
    assert list(tmp_path.iterdir()) == []


def test_fingerprints_are_stable(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("abc")
    assert artifacts.fingerprint_file(p) == "sha256:ba7816bf8f01cfea"
    assert artifacts.fingerprint_strings(["a", "b"]) != artifacts.fingerprint_strings(["ab"])


def _relabel(path, name: str, old: str, new: str) -> None:
    """Change one tensor's dtype in the safetensors header, keeping its bytes (what a careless tool might do)."""
    import json as _json
    import struct

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = _json.loads(raw[8 : 8 + n])
    assert header[name]["dtype"] == old
    header[name]["dtype"] = new
    text = _json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (n - len(text))  # same header length: the data offsets stay right
    assert len(text) == n
    path.write_bytes(raw[:8] + text + raw[8 + n :])


def test_a_relabelled_tensor_is_refused(tiny_dataset, tmp_path):
    """Relabelling the dataset's items from I64 to F64 passed every check (and eval reported NDCG@10 = 1)."""
    import shutil

    from mmrec_cli.data import dataset as D
    from mmrec_cli.errors import MmrecError

    path, _ = tiny_dataset
    bad = tmp_path / "bad.safetensors"
    shutil.copy(path, bad)
    _relabel(bad, "items", "I64", "F64")
    with pytest.raises(MmrecError, match="do not match the hash recorded when it was written; the file was altered") as err:
        D.load(str(bad))
    assert err.value.code == 5
