"""Reproducibility: the same pipeline, run twice with the same seed, writes byte-identical files.

The pipeline is the example one in miniature (prepare -> pretrain -> finetune --init -> eval ->
recommend, for a multimodal model and for SASRec), run in-process twice in the same directory with
every output deleted in between, so that the recorded paths are equal too.
"""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.io import feature_file as FE

N_USERS, N_ITEMS = 16, 24
TINY = ["--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.max_len=8"]


def write_inputs(d) -> None:
    """Interactions with timestamps, an items file, a features artifact and histories to recommend for."""
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,timestamp"]
    for u in range(N_USERS):
        for t, i in enumerate(rng.choice(N_ITEMS, size=int(rng.integers(4, 9)), replace=False)):
            rows.append(f"u{u},i{i},{t}")
    (d / "inter.csv").write_text("\n".join(rows) + "\n")
    ids = [f"i{i}" for i in range(N_ITEMS)]
    (d / "items.jsonl").write_text("".join(json.dumps({"item_id": i, "text": f"item {i}"}) + "\n" for i in ids))
    feats = {"text": rng.standard_normal((N_ITEMS, 12)).astype(np.float32), "image": rng.standard_normal((N_ITEMS, 10)).astype(np.float32)}
    FE.save(str(d / "f.safetensors"), feats, ids, "test", {}, {}, {"text": {"source": "test"}, "image": {"source": "test"}})
    (d / "h.jsonl").write_text('{"user_id": "x", "items": ["i1", "i2", "i3"]}\n{"items": ["i5"]}\n')


STEPS = [
    ["prepare", "inter.csv", "--items", "items.jsonl", "-o", "ds.safetensors"],
    ["pretrain", "msm4sr", "ds.safetensors", "--features", "f.safetensors", "-o", "pre.safetensors", "--epochs", "2", *TINY],
    ["finetune", "msm4sr", "ds.safetensors", "--features", "f.safetensors", "--init", "pre.safetensors", "-o", "msm.safetensors", "--epochs", "3", *TINY],
    ["finetune", "sasrec", "ds.safetensors", "-o", "sas.safetensors", "--epochs", "3", *TINY],
    ["eval", "msm.safetensors", "ds.safetensors", "--features", "f.safetensors", "--split", "test", "-o", "msm.json", "--rankings", "msm.jsonl"],
    ["eval", "sas.safetensors", "ds.safetensors", "--split", "test", "-o", "sas.json", "--rankings", "sas.jsonl"],
    ["recommend", "msm.safetensors", "ds.safetensors", "--features", "f.safetensors", "-i", "h.jsonl", "-o", "rec.jsonl", "--top-k", "5"],
]
OUTPUTS = ["ds.safetensors", "pre.safetensors", "msm.safetensors", "sas.safetensors", "msm.json", "msm.jsonl", "sas.json", "sas.jsonl", "rec.jsonl"]


def run_pipeline(d) -> dict[str, bytes]:
    runner = CliRunner()
    for step in STEPS:
        r = runner.invoke(app, step)
        assert r.exit_code == 0, (step, r.output)
    out = {name: (d / name).read_bytes() for name in OUTPUTS}
    for name in OUTPUTS:
        (d / name).unlink()
    return out


def test_the_pipeline_twice_gives_identical_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path)
    first = run_pipeline(tmp_path)
    second = run_pipeline(tmp_path)
    assert [n for n in OUTPUTS if first[n] != second[n]] == []
    metrics = json.loads(first["msm.json"])
    assert metrics["seed"] == 2020 and metrics["metrics"]["users"] == N_USERS
    assert len(first["rec.jsonl"].splitlines()) == 2
