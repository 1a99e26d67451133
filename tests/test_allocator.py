"""Pinning glibc's mmap threshold: freed blocks above it go back to the system; the environment's setting wins;
the training commands pin what the model's spec asks for, and nothing for a model that asks for nothing."""

import dataclasses
import os
import platform
import subprocess
import sys

import pytest

from mmrec_cli.training import allocator

glibc = pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"), reason="glibc only")

# Two rounds of malloc + touch + free of an 8 MiB block, then the resident memory (KiB) while the second block is
# held and after it is freed. Unpinned, the first free raises glibc's threshold to 8 MiB, so the second block comes
# from the heap and stays resident after its free; pinned at 4 MiB, both are mappings of their own.
PROBE = """
import ctypes, sys
from mmrec_cli.training import allocator
pinned = allocator.pin_mmap_threshold(4 << 20) if sys.argv[1] == "pin" else allocator.pin_mmap_threshold(None)
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4
size = 8 << 20
p = libc.malloc(size); ctypes.memset(p, 1, size); libc.free(p)
p = libc.malloc(size); ctypes.memset(p, 1, size)
held = rss(); libc.free(p)
print(pinned, held - rss())
"""


def probe(mode: str, env: dict | None = None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | (env or {})
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


@glibc
def test_pinned_threshold_returns_a_freed_8_mib_block_that_the_dynamic_one_keeps():
    pinned, released = probe("pin")
    assert pinned == "True" and released >= 8 * 1024 - 64, released
    pinned, kept = probe("none")
    assert pinned == "False" and kept < 1024, kept  # None pins nothing: glibc's dynamic threshold keeps it


@glibc
def test_the_environments_threshold_wins():
    pinned, released = probe("pin", {"MALLOC_MMAP_THRESHOLD_": str(64 << 20)})
    assert pinned == "False" and released < 1024, released


def test_missrec_asks_for_4_mib_and_the_others_for_nothing():
    from mmrec_cli import models

    assert {name: models.get(name).mmap_threshold for name in models.MODELS if models.get(name).mmap_threshold} == {"missrec": 4 << 20}


def test_training_commands_pin_what_the_model_asks_for(tmp_path, monkeypatch):
    from _cli import run
    from test_unisrec_model import feats, tiny

    from mmrec_cli import models
    from mmrec_cli.data import dataset as D
    from mmrec_cli.io import feature_file

    D.save(tiny(), str(tmp_path / "ds.safetensors"), {"command": "test"}, {}, {})
    feature_file.save(str(tmp_path / "f.safetensors"), {k: v.numpy() for k, v in feats().items()}, tiny().item_ids, "test", {}, {}, {"text": {"source": "test"}})
    calls = []
    monkeypatch.setattr(allocator, "pin_mmap_threshold", lambda nbytes: calls.append(nbytes) or nbytes is not None)
    from mmrec_cli.models import unisrec

    assert models.get("unisrec").mmap_threshold is None
    monkeypatch.setattr(unisrec, "SPEC", dataclasses.replace(unisrec.SPEC, mmap_threshold=1 << 20))  # what a spec asks for reaches the allocator
    p = lambda name: str(tmp_path / name)  # noqa: E731
    common = [p("ds.safetensors"), "--features", p("f.safetensors"), "--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.layers=1", "--set", "model.experts=2", "--epochs", 1]
    for args in (["pretrain", "unisrec", *common, "-o", p("pre.safetensors")], ["finetune", "unisrec", *common, "-o", p("ft.safetensors")]):
        r = run(*args)
        assert r.exit_code == 0, r.output
    r = run("transfer", p("pre.safetensors"), p("ds.safetensors"), "--features", p("f.safetensors"), "--epochs", 0, "-o", p("zero.safetensors"))
    assert r.exit_code == 0, r.output
    assert calls == [1 << 20] * 3
    r = run("eval", p("ft.safetensors"), p("ds.safetensors"), "--features", p("f.safetensors"))
    assert r.exit_code == 0 and len(calls) == 3, r.output  # evaluation leaves the allocator as it is
