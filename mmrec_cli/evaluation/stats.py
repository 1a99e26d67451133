"""Honest tables: per-user paired significance tests between two models, and means over seeds.

Per-user results come from the rankings JSON lines of `mmrec eval --rankings` (user_id, targets,
ranks). Two models evaluated on the same users give paired samples of a per-user metric (NDCG@10,
Recall@10, ...); the paired t-test and the Wilcoxon signed-rank test (scipy, which scikit-learn
brings) say how likely the mean difference is under "no difference".
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mmrec_cli.errors import bad_input
from mmrec_cli.evaluation.ranking import user_metrics
from mmrec_cli.io.jsonl import read_jsonl


def read_rankings(path: str) -> dict[str, list[int]]:
    """user_id -> 0-based ranks of the user's targets, from an `eval --rankings` file."""
    out: dict[str, list[int]] = {}
    for lineno, rec in read_jsonl(path):
        if "user_id" not in rec or not isinstance(rec.get("ranks"), list) or not rec["ranks"]:
            raise bad_input(f"{path}:{lineno}: expected a per-user ranking (user_id, ranks) as written by `mmrec eval --rankings`")
        out[str(rec["user_id"])] = [int(r) for r in rec["ranks"]]
    return out


def per_user(ranks: dict[str, list[int]], metric: str = "ndcg@10") -> dict[str, float]:
    """user_id -> the metric ("ndcg@10", "recall@20", "mrr@10") of that user."""
    name, _, k = metric.partition("@")
    if name not in ("ndcg", "recall", "mrr") or not k.isdigit():
        raise bad_input(f"metric '{metric}': expected ndcg@K, recall@K or mrr@K")
    return {u: user_metrics(r, int(k))[name] for u, r in ranks.items()}


def paired_test(a: dict[str, float], b: dict[str, float]) -> dict:
    """Paired t-test and Wilcoxon signed-rank test of b - a over the users both have.

    p-values are two-sided; a test without any non-zero difference gets p = 1.
    """
    users = sorted(set(a) & set(b))
    if len(users) < 2:
        raise bad_input(f"a paired test needs at least 2 users in common; the two results share {len(users)}: evaluate both models on the same dataset and split")
    x = np.array([a[u] for u in users], dtype=np.float64)
    y = np.array([b[u] for u in users], dtype=np.float64)
    d = y - x
    out = {
        "users": len(users),
        "only_a": len(set(a) - set(b)),
        "only_b": len(set(b) - set(a)),
        "mean_a": float(x.mean()),
        "mean_b": float(y.mean()),
        "mean_diff": float(d.mean()),
        "better": int((d > 0).sum()),
        "worse": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
    }
    out["t"], out["t_p"] = _ttest(d)
    out["wilcoxon_w"], out["wilcoxon_p"] = _wilcoxon(d)
    return out


def _ttest(d: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    sd = d.std(ddof=1)
    if sd == 0:
        return (0.0, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
    t = d.mean() / (sd / math.sqrt(len(d)))
    return float(t), float(2 * stats.t.sf(abs(t), len(d) - 1))


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    """W = the smaller of the signed-rank sums (zero differences dropped, ties given mean ranks)."""
    from scipy import stats

    nz = d[d != 0]
    if len(nz) == 0:
        return 0.0, 1.0
    res = stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def seed_summary(results: list[dict]) -> dict:
    """Mean and sample standard deviation of each metric over several runs (seeds) of one model."""
    keys = [k for k in results[0]["metrics"] if k != "users" and all(k in r["metrics"] for r in results)]
    out = {}
    for k in keys:
        v = np.array([r["metrics"][k] for r in results], dtype=np.float64)
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}
    return out


def rankings_path(result: dict, result_path: str) -> str | None:
    """The rankings file an eval result names (relative to the result file when not absolute), if it exists."""
    p = result.get("rankings")
    if not p or p == "-":
        return None
    path = Path(p)
    for cand in (path, Path(result_path).parent / path):
        if cand.is_file():
            return str(cand)
    return None


# ----------------------------------------------------------------------------- eval --compare


def compare_files(paths: list[str], metrics=("ndcg@10", "recall@10")) -> dict:
    """Several `mmrec eval -o` results side by side: their metrics, mean/std over runs that differ
    only by seed, and paired per-user tests where the results name rankings files.

    Runs of one model (same name, setting, split, dataset and history masking) form a group; the
    setting (`loading.setting`, in results of `mmrec eval` since it records one) tells a pre-trained
    model from the same model trained from scratch, or two configs apart. When some model
    has several seeds, each other group is tested against the first group seed by seed (same seed,
    same users) and pooled over the shared seeds; otherwise each result against the first."""
    if len(paths) < 2:
        raise bad_input("--compare needs at least two eval result files")
    names = [Path(p).name for p in paths]
    results = [_load_result(p, name if names.count(name) == 1 else p) for p, name in zip(paths, names)]
    warnings = _comparability(results)
    groups = _groups(results)
    seeds = [_seed_row(g) for g in groups if _distinct_seeds(g) and len(g["members"]) > 1]
    users = _Users()
    if _by_seed(groups):
        tests = _group_tests(groups, metrics, users, warnings)
    else:
        tests = _each_vs_first(results, metrics, users, warnings)
    return {"results": results, "seeds": seeds, "tests": tests, "warnings": warnings}


def _load_result(p: str, label: str) -> dict:
    """The fields of one `mmrec eval -o` result file that a comparison needs."""
    import json

    from mmrec_cli.errors import not_found

    if not Path(p).is_file():
        raise not_found(f"{p}: no such file; check the path")
    try:
        r = json.loads(Path(p).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise bad_input(f"{p}: not JSON ({err}); give result files written by `mmrec eval -o`") from err
    if not isinstance(r, dict) or not isinstance(r.get("metrics"), dict):
        raise bad_input(f"{p}: not an eval result (no \"metrics\"); give files written by `mmrec eval -o`")
    model = r.get("model") or {}
    return {
        "label": label, "path": p, "model": model.get("name"), "setting": model.get("setting"), "model_path": model.get("path"), "split": r.get("split"),
        "seed": r.get("seed"), "dataset": (r.get("dataset") or {}).get("fingerprint"), "mask_history": r.get("mask_history"), "masked": r.get("masked"),
        "metrics": r["metrics"], "rankings": rankings_path(r, p), "best_epoch": model.get("best_epoch"), "slices": r.get("slices"),
    }


def _where(r: dict) -> tuple:
    """Results with the same split of the same dataset rank the same users' targets."""
    return r["split"], r["dataset"]


def _comparability(results: list[dict]) -> list[str]:
    base = results[0]
    return [
        f"{r['label']} is on {r['split']} of dataset {r['dataset']}, {base['label']} on {base['split']} of {base['dataset']}: not comparable"
        for r in results[1:] if _where(r) != _where(base)
    ]


def _groups(results: list[dict]) -> list[dict]:
    """Runs of one model and setting on one split, in the order their first result was given."""
    by_key: dict[tuple, list[dict]] = {}
    for r in results:
        by_key.setdefault((r["model"], r["split"], r["setting"], r["dataset"], r["mask_history"], r["masked"]), []).append(r)
    labels = [f"{model} · {split}" for model, split, *_ in by_key]
    # the same model and split twice (another setting, dataset or masking): name each by its first file
    return [
        {"label": label if labels.count(label) == 1 else f"{label} ({members[0]['label']})", "members": members}
        for label, members in zip(labels, by_key.values())
    ]


def _distinct_seeds(group: dict) -> bool:
    seeds = [r["seed"] for r in group["members"]]
    return None not in seeds and len(set(seeds)) == len(seeds)


def _seed_row(group: dict) -> dict:
    members = group["members"]
    return {"label": f"{group['label']} ({len(members)} seeds)", "members": [m["label"] for m in members], "seeds": [m["seed"] for m in members], "summary": seed_summary(members)}


def _by_seed(groups: list[dict]) -> bool:
    """Compare groups seed by seed when some model has several runs and every run names its own seed."""
    return any(len(g["members"]) > 1 for g in groups) and all(_distinct_seeds(g) for g in groups)


class _Users:
    """Per-user metrics of rankings files; each file is read once however many rows use it."""

    def __init__(self) -> None:
        self._ranks: dict[str, dict[str, list[int]]] = {}

    def metric(self, path: str, metric: str) -> dict[str, float]:
        if path not in self._ranks:
            self._ranks[path] = read_rankings(path)
        return per_user(self._ranks[path], metric)


def mean_per_user(runs: list[dict[str, float]]) -> dict[str, float]:
    """user -> the metric averaged over several runs (seeds), for the users every run has."""
    common = set.intersection(*(set(r) for r in runs))
    return {u: math.fsum(r[u] for r in runs) / len(runs) for u in common}


def _each_vs_first(results: list[dict], metrics, users: _Users, warnings: list[str]) -> list[dict]:
    """One result per model: each against the first."""
    base, tests = results[0], []
    for r in results[1:]:
        if base["rankings"] and r["rankings"] and _where(r) == _where(base):
            tests.append({"a": base["label"], "b": r["label"], "label": f"{r['label']} vs {base['label']}", "tests": {m: paired_test(users.metric(base["rankings"], m), users.metric(r["rankings"], m)) for m in metrics}})
        elif r is results[1] or not base["rankings"]:
            missing = [x["label"] for x in (base, r) if not x["rankings"]]
            if missing:
                warnings.append(_no_rankings(r["label"], base["label"], missing))
    return tests


def _no_rankings(b: str, a: str, missing: list[str]) -> str:
    return f"no paired test of {b} vs {a}: {', '.join(missing)} names no rankings file (run `mmrec eval ... -o R.json --rankings R.jsonl`)"


def _group_tests(groups: list[dict], metrics, users: _Users, warnings: list[str]) -> list[dict]:
    """Each other group against the first: one row per shared seed, then one pooled over them."""
    base, tests = groups[0], []
    if len(groups) == 1:
        warnings.append(f"all results are runs of {base['label']}: paired tests compare models, so there are none (the mean ± std table shows the spread over seeds)")
    for other in groups[1:]:
        if _where(other["members"][0]) != _where(base["members"][0]):
            continue  # already noted as not comparable
        pairs = _shared_seeds(base, other, warnings)
        tests += [_seed_test(base, other, a, b, metrics, users) for a, b in pairs]
        if len(pairs) > 1:
            tests.append(_pooled_test(base, other, pairs, metrics, users))
    return tests


def _shared_seeds(base: dict, other: dict, warnings: list[str]) -> list[tuple[dict, dict]]:
    """(base run, other run) pairs with the same seed and both rankings files, in the base group's order."""
    by_seed = {r["seed"]: r for r in other["members"]}
    pairs = [(a, by_seed[a["seed"]]) for a in base["members"] if a["seed"] in by_seed]
    if not pairs:
        warnings.append(f"no paired test of {other['label']} vs {base['label']}: no seed in common (seeds {_seeds(other['members'])} vs {_seeds(base['members'])}); train both with the same --seeds")
    for a, b in pairs:
        missing = [x["label"] for x in (a, b) if not x["rankings"]]
        if missing:
            warnings.append(_no_rankings(b["label"], a["label"], missing))
    return [(a, b) for a, b in pairs if a["rankings"] and b["rankings"]]


def _seeds(runs: list[dict]) -> str:
    return ", ".join(str(r["seed"]) for r in runs)


def _seed_test(base: dict, other: dict, a: dict, b: dict, metrics, users: _Users) -> dict:
    return {
        "a": a["label"], "b": b["label"], "group_a": base["label"], "group_b": other["label"], "seed": a["seed"],
        "label": f"{other['label']} vs {base['label']}, seed {a['seed']}",
        "tests": {m: paired_test(users.metric(a["rankings"], m), users.metric(b["rankings"], m)) for m in metrics},
    }


def _pooled_test(base: dict, other: dict, pairs: list[tuple[dict, dict]], metrics, users: _Users) -> dict:
    """The paired tests on each user's metric averaged over the shared seeds."""

    def pooled(runs, m):
        return mean_per_user([users.metric(r["rankings"], m) for r in runs])

    side_a, side_b = [a for a, _ in pairs], [b for _, b in pairs]
    return {
        "a": base["label"], "b": other["label"], "group_a": base["label"], "group_b": other["label"], "seeds": [a["seed"] for a in side_a],
        "label": f"{other['label']} vs {base['label']}, mean over seeds {_seeds(side_a)}",
        "tests": {m: paired_test(pooled(side_a, m), pooled(side_b, m)) for m in metrics},
    }


def text_table(comparison: dict, keys=("recall@10", "ndcg@10", "recall@20", "ndcg@20", "mrr@10")) -> list[str]:
    """A plain-text rendering of a comparison, for the terminal."""
    res = comparison["results"]
    keys = [k for k in keys if any(k in r["metrics"] for r in res)]
    width = max(12, *(len(r["label"]) for r in res)) + 2
    lines = ["metric".ljust(10) + "".join(r["label"].rjust(width) for r in res)]
    for k in keys:
        lines.append(k.ljust(10) + "".join((f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "-").rjust(width) for r in res))
    for g in comparison["seeds"]:
        lines.append(f"{g['label']}: " + "  ".join(f"{k} {g['summary'][k]['mean']:.4f} ± {g['summary'][k]['std']:.4f}" for k in keys if k in g["summary"]))
    for t in comparison["tests"]:
        for m, r in t["tests"].items():
            lines.append(f"{t['label']}, {m}: {r['mean_diff']:+.4f} over {r['users']} users (paired t p={r['t_p']:.3g}, Wilcoxon p={r['wilcoxon_p']:.3g})")
    lines += [f"note: {w}" for w in comparison["warnings"]]
    return lines

