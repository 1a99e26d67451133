"""Shared test set-up: no network, few threads, and tiny seeded data builders."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "scientific")


def tiny_sequences(num_users: int = 12, num_items: int = 20, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.choice(num_items, size=int(rng.integers(4, 9)), replace=False).tolist() for _ in range(num_users)]


@pytest.fixture(autouse=True)
def fp32_extraction(monkeypatch):
    """`extract --precision auto` takes bf16 on CPUs that compute it natively; the tests' reference vectors are
    fp32 on every machine, so in-process runs see a CPU without it (tests/test_precision.py tests both cases)."""
    from mmrec_cli.features import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)


@pytest.fixture
def tiny_dataset(tmp_path):
    """A saved 12-user, 20-item leave-one-out dataset; returns (path, Dataset)."""
    from mmrec_cli.data import dataset as D

    seqs = tiny_sequences()
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(20)], [f"u{u}" for u in range(len(seqs))])
    path = tmp_path / "ds.safetensors"
    D.save(ds, str(path), {"command": "test"}, {}, {})
    return path, D.load(str(path))


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """The tiny random BERT and open_clip models of _tiny_models, built once for the whole session (~10 s)."""
    from types import SimpleNamespace

    from _tiny_models import tiny_bert, tiny_clip

    d = tmp_path_factory.mktemp("models")
    config, ckpt = tiny_clip(d / "clip")
    return SimpleNamespace(bert=tiny_bert(d / "bert"), clip=["--clip-model", config, "--clip-pretrained", ckpt], config=config, ckpt=ckpt)
