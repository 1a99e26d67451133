import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from mmrec_cli import report, stats
from mmrec_cli.errors import MmrecError
from mmrec_cli.io import artifacts
from mmrec_cli.main import app

runner = CliRunner()


def test_paired_tests_match_scipy():
    rng = np.random.default_rng(0)
    a = {f"u{i}": float(v) for i, v in enumerate(rng.random(40))}
    b = {u: v + 0.1 + float(rng.normal(0, 0.2)) for u, v in a.items()}
    b["only_b"] = 1.0
    r = stats.paired_test(a, b)
    x, y = np.array([a[u] for u in sorted(a)]), np.array([b[u] for u in sorted(a)])
    t = sps.ttest_rel(y, x)
    w = sps.wilcoxon(y - x)
    assert r["users"] == 40 and r["only_b"] == 1 and r["only_a"] == 0
    assert r["t"] == pytest.approx(t.statistic) and r["t_p"] == pytest.approx(t.pvalue)
    assert r["wilcoxon_w"] == pytest.approx(w.statistic) and r["wilcoxon_p"] == pytest.approx(w.pvalue)
    assert r["mean_diff"] == pytest.approx((y - x).mean()) and r["better"] + r["worse"] + r["ties"] == 40


def test_paired_test_edge_cases():
    same = {"a": 0.5, "b": 0.0, "c": 1.0}
    r = stats.paired_test(same, same)
    assert (r["t_p"], r["wilcoxon_p"], r["ties"]) == (1.0, 1.0, 3)
    with pytest.raises(MmrecError, match="at least 2 users in common"):
        stats.paired_test({"a": 1.0}, {"b": 1.0})
    assert stats.per_user({"u": [0], "v": [1], "w": [10]}, "ndcg@10") == {"u": 1.0, "v": pytest.approx(1 / np.log2(3)), "w": 0.0}
    with pytest.raises(MmrecError, match="expected ndcg@K"):
        stats.per_user({}, "auc")


def test_seed_summary():
    s = stats.seed_summary([{"metrics": {"ndcg@10": 0.1, "users": 3}}, {"metrics": {"ndcg@10": 0.3, "users": 3}}])
    assert s == {"ndcg@10": {"mean": pytest.approx(0.2), "std": pytest.approx(np.std([0.1, 0.3], ddof=1)), "n": 2}}


def test_chart_is_valid_svg_with_one_line_per_series():
    svg = report.line_chart({"a": [(0, 1.0), (1, 0.5), (2, 0.25)], "b": [(0, 0.2), (1, 0.4), (2, float("nan"))]}, "T", marks={"best": 1})
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 2 and len(root.findall(f"{ns}circle")) == 5
    assert report.nice_ticks(0.03, 0.11) == [0.02, 0.04, 0.06, 0.08, 0.1, 0.12]
    assert "no data" in report.line_chart({"a": []}, "Empty")


def _finetune(ds_path, out, *extra):
    r = runner.invoke(app, ["finetune", "sasrec", str(ds_path), "-o", str(out), "--epochs", "3", "--max-len", "6", "--set", "model.hidden=16", "--set", "model.inner=32", *extra])
    assert r.exit_code == 0, r.output


def test_seeds_eval_report_and_compare(tiny_dataset, tmp_path):
    ds_path, _ = tiny_dataset
    _finetune(ds_path, tmp_path / "m.safetensors", "--seeds", "1,2")
    for s in (1, 2):
        meta = artifacts.read_meta(tmp_path / f"m.seed{s}.safetensors", "model")
        assert meta["seed"] == s and meta["config"]["train"]["seed"] == s and len(meta["history"]) == 3
        r = runner.invoke(app, ["eval", str(tmp_path / f"m.seed{s}.safetensors"), str(ds_path), "--split", "test", "-o", str(tmp_path / f"r{s}.json"), "--rankings", str(tmp_path / f"r{s}.jsonl"), "--report", str(tmp_path / f"r{s}.html")])
        assert r.exit_code == 0, r.output
    page = (tmp_path / "r1.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") == 2 and "Training loss" in page and "Validation metrics" in page
    res = json.loads((tmp_path / "r1.json").read_text())
    assert f"{res['metrics']['ndcg@10']:.4f}" in page and res["rankings"] == str(tmp_path / "r1.jsonl")

    r = runner.invoke(app, ["eval", "--compare", str(tmp_path / "r1.json"), str(tmp_path / "r2.json"), "-o", str(tmp_path / "c.json"), "--report", str(tmp_path / "c.html")])
    assert r.exit_code == 0, r.output
    c = json.loads((tmp_path / "c.json").read_text())
    assert [x["label"] for x in c["results"]] == ["r1.json", "r2.json"]
    assert c["seeds"][0]["seeds"] == [1, 2] and c["seeds"][0]["summary"]["ndcg@10"]["n"] == 2
    t = c["tests"][0]["tests"]["ndcg@10"]
    assert t["users"] == 12 and 0 <= t["t_p"] <= 1 and 0 <= t["wilcoxon_p"] <= 1
    assert "r2.json vs r1.json ndcg@10" in r.stderr
    html = (tmp_path / "c.html").read_text()
    assert "Over seeds" in html and "Paired significance" in html and html.count("<svg") == 2

    r = runner.invoke(app, ["eval", "--compare", str(tmp_path / "r1.json"), str(ds_path)])
    assert r.exit_code == 3 and "not JSON" in r.stderr
    r = runner.invoke(app, ["eval", str(tmp_path / "r1.json")])
    assert r.exit_code == 2 and "expected MODEL DATASET" in r.stderr
