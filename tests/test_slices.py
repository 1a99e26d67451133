"""Metrics per slice, counted by hand on a tiny dataset."""

import numpy as np
import pytest

from mmrec_cli.data import dataset as D
from mmrec_cli.evaluation.slices import slice_metrics, target_slice, train_counts


def test_slices_by_hand():
    # train counts: item 0 x6 (popular side), item 1 x2 (cold), items 2, 3 never in train
    seqs = [[0, 1, 2, 3]] * 2 + [[0, 4, 5, 6, 7, 2]] * 4  # users 0-1 test item 3, users 2-5 test item 2
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(8)], [f"u{u}" for u in range(6)])
    counts = train_counts(ds)
    assert counts.tolist() == [6, 2, 0, 0, 4, 4, 4, 0]
    assert target_slice(np.array([0, 3, 6]), median=6.0).tolist() == ["unseen", "cold", "mid"]
    # both test targets (items 3 and 2) never occur in train
    records = [{"user": u, "targets": [3], "ranks": [0]} for u in range(2)] + [{"user": u, "targets": [2], "ranks": [20]} for u in range(2, 6)]
    out = slice_metrics(ds, "test", records, ks=(10,))
    assert set(out["target"]) == {"unseen"} and out["target"]["unseen"]["users"] == 6
    assert out["target"]["unseen"]["recall@10"] == pytest.approx(2 / 6)
    # history lengths before the test target: users 0-1 hold 3 items, users 2-5 hold 5
    assert set(out["history"]) == {"1-5"} and out["history"]["1-5"]["users"] == 6


def test_cold_and_popular_targets_split():
    seqs = [[0, 1, 2]] * 8 + [[3, 4, 1]] * 2  # train: item 0 x8, item 3 x2; everything else is valid or test
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(5)], [f"u{u}" for u in range(10)])
    counts = train_counts(ds)
    assert counts.tolist() == [8, 0, 0, 2, 0]
    records = [{"user": u, "targets": [t], "ranks": [r]} for u, t, r in ((0, 0, 0), (1, 3, 5), (2, 2, 9))]
    out = slice_metrics(ds, "test", records, ks=(1,))
    assert {k: v["users"] for k, v in out["target"].items()} == {"unseen": 1, "cold": 1, "mid": 1}
    assert out["target"]["mid"]["recall@1"] == 1.0 and out["target"]["cold"]["recall@1"] == 0.0


def test_eval_slice_writes_the_slices(tiny_dataset, tmp_path):
    import json

    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    ds_path, _ = tiny_dataset
    model, out = tmp_path / "m.safetensors", tmp_path / "r.json"
    r = CliRunner().invoke(app, ["finetune", "sasrec", str(ds_path), "--epochs", "1", "--set", "model.hidden=8", "--set", "model.inner=16", "-o", str(model)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["eval", str(model), str(ds_path), "--split", "test", "--slice", "-o", str(out)])
    assert r.exit_code == 0, r.output
    slices = json.loads(out.read_text())["slices"]
    assert sum(m["users"] for m in slices["target"].values()) == 12 and sum(m["users"] for m in slices["history"].values()) == 12
    assert "target cold" in r.output or "target unseen" in r.output or "target mid" in r.output


def test_slices_are_drawn_in_the_report():
    from mmrec_cli.evaluation import report

    slices = {"target": {"unseen": {"users": 6, "recall@10": 0.5, "ndcg@10": 0.25}, "cold": {"users": 2, "recall@10": 1.0, "ndcg@10": 0.5}},
              "history": {"1-5": {"users": 8, "ndcg@10": 0.125}}, "cold_max": 5, "median_warm_count": 7.0}
    page = report.eval_report({"metrics": {"ndcg@10": 0.3, "users": 8}, "slices": slices}, None)
    assert "<h2>Slices</h2>" in page and "<tr><td>unseen</td><td>6</td><td>0.5000</td><td>0.2500</td><td>–</td><td>–</td></tr>" in page
    assert "<tr><td>1-5</td><td>8</td><td>–</td><td>0.1250</td>" in page and "seen 1 to 5 times in train" in page
    other = {"target": {"cold": {"users": 2, "ndcg@10": 0.75}}}
    table = report.slice_comparison([{"label": "a", "slices": slices}, {"label": "b", "slices": other}, {"label": "c", "slices": None}])
    assert "<tr><th>slice</th><th>a</th><th>b</th></tr>" in table
    assert "<tr><td>unseen</td><td>0.2500</td><td>–</td></tr><tr><td>cold</td><td>0.5000</td><td>0.7500</td></tr>" in table
