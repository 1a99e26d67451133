import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.errors import MmrecError
from mmrec_cli.evaluation import report, stats
from mmrec_cli.io import artifacts

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

    # a second "model": the same runs renamed, each seed given the other seed's rankings
    for s, other in ((1, 2), (2, 1)):
        res = json.loads((tmp_path / f"r{s}.json").read_text())
        res["model"]["name"], res["rankings"] = "twin", f"r{other}.jsonl"
        (tmp_path / f"t{s}.json").write_text(json.dumps(res))
    files = [str(tmp_path / f) for f in ("r1.json", "r2.json", "t1.json", "t2.json")]
    r = runner.invoke(app, ["eval", "--compare", *files, "-o", str(tmp_path / "c.json"), "--report", str(tmp_path / "c.html")])
    assert r.exit_code == 0, r.output
    c = json.loads((tmp_path / "c.json").read_text())
    assert [x["label"] for x in c["results"]] == ["r1.json", "r2.json", "t1.json", "t2.json"]
    assert c["seeds"][0]["seeds"] == [1, 2] and c["seeds"][0]["summary"]["ndcg@10"]["n"] == 2
    assert [(t["a"], t["b"]) for t in c["tests"]] == [("r1.json", "t1.json"), ("r2.json", "t2.json"), ("sasrec · test", "twin · test")]
    t = c["tests"][2]["tests"]["ndcg@10"]
    assert t["users"] == 12 and t["mean_diff"] == pytest.approx(0.0, abs=1e-12) and 0 <= t["wilcoxon_p"] <= 1
    assert "twin · test vs sasrec · test, seed 1, ndcg@10" in r.stderr and "mean over seeds 1, 2, recall@10" in r.stderr
    html = (tmp_path / "c.html").read_text()
    assert "Over seeds" in html and "Paired significance" in html and html.count("<svg") == 2 and html.count('<tr class="pooled">') == 2

    r = runner.invoke(app, ["eval", "--compare", str(tmp_path / "r1.json"), str(ds_path)])
    assert r.exit_code == 3 and "not JSON" in r.stderr
    r = runner.invoke(app, ["eval", str(tmp_path / "r1.json")])
    assert r.exit_code == 2 and "expected MODEL DATASET" in r.stderr


# ----------------------------------------------------------------------------- compare: which pairs are tested

# ranks 0 (a hit at the top: NDCG@10 = Recall@10 = 1) and 20 (a miss: 0) keep per-user values hand-computable
RUNS = {  # (model, seed): rank of users u0..u3
    ("A", 1): [0, 0, 20, 20], ("A", 2): [0, 20, 20, 20],
    ("B", 1): [0, 0, 0, 20], ("B", 2): [0, 0, 0, 0], ("B", 3): [20, 20, 20, 20],
    ("C", 7): [0, 20, 0, 20],
}


def _run_files(tmp_path, runs, settings=None):
    """One eval result (+ its rankings file) per (model, seed), as `mmrec eval -o R --rankings R.jsonl` writes;
    `settings` (model -> (name, setting)) files some of them as another setting of a model."""
    paths = []
    for model, seed in runs:
        ranks = RUNS[(model, seed)]
        model, setting = (settings or {}).get(model, (model, None))
        name = f"{model}{setting or ''}{seed}"
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"user_id": f"u{i}", "ranks": [r]}) + "\n" for i, r in enumerate(ranks)))
        hit = sum(r == 0 for r in ranks) / len(ranks)
        res = {"metrics": {"ndcg@10": hit, "recall@10": hit, "users": 4}, "split": "test", "seed": seed, "mask_history": False,
               "model": {"name": model, "setting": setting}, "dataset": {"fingerprint": "sha256:x"}, "rankings": f"{name}.jsonl"}
        (tmp_path / f"{name}.json").write_text(json.dumps(res))
        paths.append(str(tmp_path / f"{name}.json"))
    return paths


def test_compare_groups_seed_by_seed_and_pooled(tmp_path):
    paths = _run_files(tmp_path, [("A", 1), ("A", 2), ("B", 1), ("B", 3), ("B", 2), ("C", 7)])
    r = runner.invoke(app, ["eval", "--compare", *paths, "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    c = json.loads((tmp_path / "c.json").read_text())
    # B against A on their shared seeds 1 and 2 (in A's order), then pooled; no A-vs-A or B-vs-B rows; C shares no seed
    rows = [(t["a"], t["b"], t.get("seed"), t.get("seeds")) for t in c["tests"]]
    assert rows == [("A1.json", "B1.json", 1, None), ("A2.json", "B2.json", 2, None), ("A · test", "B · test", None, [1, 2])]
    assert [t["label"] for t in c["tests"]] == ["B · test vs A · test, seed 1", "B · test vs A · test, seed 2", "B · test vs A · test, mean over seeds 1, 2"]
    assert any("no paired test of C · test vs A · test: no seed in common" in w for w in c["warnings"])
    # seed 1: diffs (0, 0, 1, 0); seed 2: (0, 1, 1, 1); per-user means A (1, .5, 0, 0), B (1, 1, 1, .5): diffs (0, .5, 1, .5)
    assert c["tests"][0]["tests"]["ndcg@10"]["mean_diff"] == pytest.approx(0.25)
    assert c["tests"][1]["tests"]["ndcg@10"]["mean_diff"] == pytest.approx(0.75)
    pooled = c["tests"][2]["tests"]["ndcg@10"]
    assert (pooled["mean_a"], pooled["mean_b"], pooled["mean_diff"]) == pytest.approx((0.375, 0.875, 0.5))
    assert (pooled["users"], pooled["better"], pooled["worse"], pooled["ties"]) == (4, 3, 0, 1)
    t = sps.ttest_rel([1, 1, 1, 0.5], [1, 0.5, 0, 0])
    assert pooled["t"] == pytest.approx(t.statistic) and pooled["t_p"] == pytest.approx(t.pvalue)
    for t in c["tests"]:  # the same rows on stderr
        assert f"{t['label']}, ndcg@10: {t['tests']['ndcg@10']['mean_diff']:+.4f} over 4 users" in r.stderr
    assert "B · test vs A · test, mean over seeds 1, 2, recall@10: +0.5000" in r.stderr


def test_compare_groups_by_setting_too(tmp_path):
    # runs of one model in two settings (say pre-trained and from scratch) are two groups, tested seed by seed
    settings = {"A": ("M", "pre"), "B": ("M", "scratch")}
    c = stats.compare_files(_run_files(tmp_path, [("A", 1), ("A", 2), ("B", 1), ("B", 2)], settings))
    assert [t["label"] for t in c["tests"]] == [
        "M · test (Mscratch1.json) vs M · test (Mpre1.json), seed 1", "M · test (Mscratch1.json) vs M · test (Mpre1.json), seed 2",
        "M · test (Mscratch1.json) vs M · test (Mpre1.json), mean over seeds 1, 2",
    ]
    assert c["tests"][2]["tests"]["ndcg@10"]["mean_diff"] == pytest.approx(0.5)  # as B vs A above
    assert [row["seeds"] for row in c["seeds"]] == [[1, 2], [1, 2]]


def test_setting_leaves_out_the_seed_and_follows_the_init():
    from mmrec_cli.training.loading import setting

    def meta(seed, lr=1e-3, init=None):
        return {"model": "m", "stage": "finetune", "config": {"model": {"hidden": 8}, "train": {"lr": lr, "seed": seed}},
                "dataset": {"fingerprint": "d"}, "features": None, "init": init, "seed": seed, "valid": {"ndcg@10": seed}}

    assert setting(meta(1)) == setting(meta(2)) != setting(meta(1, lr=1e-4))
    pre1, pre2 = ({"setting": setting({**meta(s), "stage": "pretrain"}), "fingerprint": f"f{s}"} for s in (1, 2))
    assert setting(meta(1, init=pre1)) == setting(meta(2, init=pre2)) != setting(meta(1))  # pre-trained from other seeds: one setting
    assert setting(meta(1, init={"fingerprint": "a"})) != setting(meta(1, init={"fingerprint": "b"}))  # older artifacts: the init file
    assert setting(meta(1)).startswith("sha256:") and meta(1)["config"]["train"]["seed"] == 1  # the meta is left as it was


def test_compare_one_run_per_model_tests_each_against_the_first(tmp_path):
    c = stats.compare_files(_run_files(tmp_path, [("A", 1), ("B", 3), ("C", 7)]))
    assert [(t["a"], t["b"], t["label"]) for t in c["tests"]] == [("A1.json", "B3.json", "B3.json vs A1.json"), ("A1.json", "C7.json", "C7.json vs A1.json")]
    assert c["tests"][1]["tests"]["recall@10"]["mean_diff"] == pytest.approx(0.0) and c["seeds"] == []


def test_compare_one_model_many_seeds_has_no_seed_vs_seed_rows(tmp_path):
    c = stats.compare_files(_run_files(tmp_path, [("B", 1), ("B", 2), ("B", 3)]))
    assert c["tests"] == [] and c["seeds"][0]["seeds"] == [1, 2, 3]
    assert any("all results are runs of B · test" in w for w in c["warnings"])


def test_mean_per_user_keeps_users_every_run_has():
    assert stats.mean_per_user([{"u": 1.0, "v": 0.0}, {"u": 0.0, "v": 1.0, "w": 1.0}]) == {"u": 0.5, "v": 0.5}


def test_legend_entries_never_overlap_and_fit():
    names = ["mmmlp.seed2020.test.json", "mmmlp.seed1.test.json", "W" * 15, "a", "/a/very/long/path/" * 6 + "r.json", "sasrec.seed2.test.json", "x"]
    at = report.legend_layout(names, 470)
    for (name, (x, row)), nxt in zip(zip(names, at), at[1:] + [(None, None)]):
        w = report.SWATCH_W + report.text_w(report._legend_text(name, 470))
        assert 10 <= x and x + w <= 460
        if nxt[1] == row:
            assert nxt[0] >= x + w  # the next entry starts after this one ends
    assert [row for _, row in at] == sorted(row for _, row in at) and at[-1][1] >= 3
    svg = report.line_chart({n: [(0, 1.0), (1, 0.5)] for n in names}, "T")
    root = ET.fromstring(svg)
    assert int(root.get("height")) == 300 + 18 * (at[-1][1] + 1) and "/a/very/long/path/" * 6 + "r.json" in svg  # full name in the tooltip


def test_wide_tables_scroll_in_their_own_box():
    cols = [(f"result-{i}.seed{i}.test.json", {"ndcg@10": i / 10}) for i in range(9)]
    assert report.compare_table(cols).startswith("<div class='wide'><table>")
    assert ".wide { overflow-x: auto;" in report.CSS
