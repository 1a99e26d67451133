"""The table of bench/recbole_reference.sh with SEEDS: per model, RecBole's and mmrec's run at each seed, the
means over seeds and Welch's t-test between the two tools' seeds (their random draws differ, so a seed's two runs
are no pair).

    .venv/bin/python bench/recbole_seeds_table.py OUT SEED [SEED ...] -- MODEL [MODEL ...]

Reads OUT/recbole_<model>_seed<S>.json (bench/recbole_run.py), OUT/mmrec_<model>_seed<S>.test.json (`mmrec eval`)
and the metadata of OUT/mmrec_<model>_seed<S>.safetensors; a seed whose run is missing is shown as such and left
out of the means.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from mmrec_cli.io import artifacts

NAMES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "bert4rec": "BERT4Rec"}
METRICS = ("ndcg@10", "recall@10")


def recbole_run(out: Path, model: str, seed: str) -> dict | None:
    path = out / f"recbole_{model}_seed{seed}.json"
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    return {"test": r["test"], "valid": r["valid"]["ndcg@10"], "epochs": f"{r['best_epoch'] + 1} / {r['epochs_run']}"}


def mmrec_run(out: Path, model: str, seed: str) -> dict | None:
    test, artifact = out / f"mmrec_{model}_seed{seed}.test.json", out / f"mmrec_{model}_seed{seed}.safetensors"
    if not (test.is_file() and artifact.is_file()):
        return None
    meta = artifacts.read_meta(str(artifact))
    epochs = f"{meta['best_epoch'] + 1} / {len(meta.get('history', []))}"
    return {"test": json.loads(test.read_text())["metrics"], "valid": meta["valid"]["ndcg@10"], "epochs": epochs}


def cells(run: dict | None) -> list[str]:
    if run is None:
        return ["(not run)", "", "", ""]
    return [f"{run['test']['ndcg@10']:.4f}", f"{run['test']['recall@10']:.4f}", f"{run['valid']:.4f}", run["epochs"]]


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.4f}"


def welch(a: list[float], b: list[float]) -> str:
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return "too few seeds for a test"
    t = stats.ttest_ind(b, a, equal_var=False)
    return f"t = {t.statistic:.2f}, p = {t.pvalue:.3g}"


def model_table(out: Path, model: str, seeds: list[str]) -> list[str]:
    rb = {s: recbole_run(out, model, s) for s in seeds}
    mm = {s: mmrec_run(out, model, s) for s in seeds}
    lines = [f"## {NAMES[model]}", "",
             "| seed | RecBole test NDCG@10 | Recall@10 | valid NDCG@10 | best epoch / run | mmrec test NDCG@10 | Recall@10 | valid NDCG@10 | best epoch / run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {s} | " + " | ".join(cells(rb[s]) + cells(mm[s])) + " |" for s in seeds]
    done = {tool: [r for r in runs.values() if r is not None] for tool, runs in (("RecBole", rb), ("mmrec", mm))}
    if not all(done.values()):
        return lines + ["", "(no mean yet: a tool has no finished run)", ""]
    mean = {tool: {k: [r["test"][k] for r in runs] for k in METRICS} for tool, runs in done.items()}
    lines += [f"| mean ± std | {mean_std(mean['RecBole']['ndcg@10'])} | {mean_std(mean['RecBole']['recall@10'])} | | "
              f"| {mean_std(mean['mmrec']['ndcg@10'])} | {mean_std(mean['mmrec']['recall@10'])} | | |", ""]
    for k in METRICS:
        a, b = mean["RecBole"][k], mean["mmrec"][k]
        rel = (np.mean(b) / np.mean(a) - 1) * 100
        lines.append(f"- test {k}: mmrec {np.mean(b):.4f} over {len(b)} seeds against RecBole {np.mean(a):.4f} over {len(a)}, "
                     f"{rel:+.1f} % relative; Welch's t-test {welch(a, b)}.")
    return lines + [""]


def main() -> None:
    args = sys.argv[1:]
    split = args.index("--")
    out, seeds, models = Path(args[0]), args[1:split], args[split + 1:]
    for model in models:
        print("\n".join(model_table(out, model, seeds)))


if __name__ == "__main__":
    main()
