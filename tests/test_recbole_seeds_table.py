"""bench/recbole_seeds_table.py: each tool's runs per seed, the means over the finished seeds, Welch's t-test."""

import importlib.util
import json
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("recbole_seeds_table", Path(__file__).resolve().parents[1] / "bench" / "recbole_seeds_table.py")
table = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(table)


def recbole(out: Path, seed: int, ndcg: float, recall: float) -> None:
    result = {"test": {"ndcg@10": ndcg, "recall@10": recall}, "valid": {"ndcg@10": 0.05}, "best_epoch": 4, "epochs_run": 15}
    (out / f"recbole_bert4rec_seed{seed}.json").write_text(json.dumps(result))


def mmrec(out: Path, seed: int, ndcg: float, recall: float, metas: dict) -> None:
    (out / f"mmrec_bert4rec_seed{seed}.test.json").write_text(json.dumps({"metrics": {"ndcg@10": ndcg, "recall@10": recall}}))
    (out / f"mmrec_bert4rec_seed{seed}.safetensors").write_text("")
    metas[str(out / f"mmrec_bert4rec_seed{seed}.safetensors")] = {"best_epoch": 9, "history": [{}] * 20, "valid": {"ndcg@10": 0.04}}


def test_the_table_of_two_tools_over_seeds(tmp_path, monkeypatch):
    metas: dict = {}
    monkeypatch.setattr(table.artifacts, "read_meta", lambda path: metas[path])
    recbole(tmp_path, 1, 0.04, 0.08)
    recbole(tmp_path, 2, 0.02, 0.06)
    mmrec(tmp_path, 1, 0.03, 0.07, metas)
    mmrec(tmp_path, 2, 0.02, 0.05, metas)
    mmrec(tmp_path, 3, 0.04, 0.06, metas)  # RecBole's seed 3 has not run: left out of RecBole's mean only
    lines = table.model_table(tmp_path, "bert4rec", ["1", "2", "3"])
    assert lines[4] == "| 1 | 0.0400 | 0.0800 | 0.0500 | 5 / 15 | 0.0300 | 0.0700 | 0.0400 | 10 / 20 |"
    assert lines[6] == "| 3 | (not run) |  |  |  | 0.0400 | 0.0600 | 0.0400 | 10 / 20 |"
    assert lines[7] == "| mean ± std | 0.0300 ± 0.0141 | 0.0700 ± 0.0141 | | | 0.0300 ± 0.0100 | 0.0600 ± 0.0100 | | |"
    assert lines[9].startswith("- test ndcg@10: mmrec 0.0300 over 3 seeds against RecBole 0.0300 over 2, +0.0 % relative; Welch's t-test t = 0.00, p = 1")
    assert lines[10] == ("- test recall@10: mmrec 0.0600 over 3 seeds against RecBole 0.0700 over 2, -14.3 % relative; Welch's t-test t = -0.87, p = 0.492.")


def test_no_mean_before_both_tools_have_a_run(tmp_path):
    recbole(tmp_path, 1, 0.04, 0.08)
    assert table.model_table(tmp_path, "bert4rec", ["1"])[-2] == "(no mean yet: a tool has no finished run)"
