"""The tables of bench/transfer_quality.sh, from the eval results and rankings files it wrote.

    python bench/transfer_table.py [--previous FILE] OUT SEED... -- FRACTION...

Each row is one model and setting over the seeds (mean ± sample std of the test metrics); a row with a 'vs' row is
tested against it on the same users: the per-user NDCG@10 averaged over the seeds both have, paired t-test and
Wilcoxon signed-rank (mmrec_cli.evaluation.stats), for all test users and for those whose target is cold: seen 1-5
times in the train split of the full Scientific data, the same users for every row and every share of users (each
eval result also holds its own slices, counted in the train split it was trained on). A missing run is shown as
missing; the table is written from whatever exists. With --previous (an earlier results file of
bench/transfer_quality.sh), a row shown as missing that the earlier file has, and a whole section it has that this
run has not, are taken from it, marked "(run at COMMIT)": the commit its own run was measured at.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np

from mmrec_cli.data import dataset as D
from mmrec_cli.evaluation import stats
from mmrec_cli.evaluation.slices import COLD, train_counts
from mmrec_cli.io import artifacts

METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
FULL = [  # (label, run name without the seed, the row it is tested against)
    ("SASRec (IDs)", "sasrec", None),
    ("MSM4SR, scratch", "msm4sr_scratch", None),
    ("MSM4SR, pre-trained on Scientific train (in-domain)", "msm4sr_sci", "msm4sr_scratch"),
    ("MSM4SR, pre-trained on Instruments", "msm4sr_instr", "msm4sr_scratch"),
    ("MSM4SR, pre-trained on Instruments + Scientific train", "msm4sr_both", "msm4sr_scratch"),
    ("MISSRec, scratch (IDs)", "missrec_scratch", None),
    ("MISSRec, Instruments, transfer inductive (no IDs)", "missrec_inductive", "missrec_scratch"),
    ("MISSRec, Instruments, transfer inductive, every parameter trained (model.full)", "missrec_inductive_full", "missrec_scratch"),
    ("MISSRec, Instruments, transfer transductive", "missrec_transductive", "missrec_scratch"),
    ("UniSRec, scratch (IDs + text)", "unisrec_scratch", None),
    ("UniSRec, Instruments, transfer inductive (text only)", "unisrec_inductive", "unisrec_scratch"),
    ("UniSRec, Instruments, transfer transductive", "unisrec_transductive", "unisrec_scratch"),
]


def runs(out: Path, name: str, seeds: list[str]) -> list[Path]:
    """The test result files of a run name that exist, one per seed (or the one seedless file)."""
    files = [out / f"{name}_s{s}.test.json" for s in seeds]
    files = [f for f in files if f.exists()]
    single = out / f"{name}.test.json"
    return files or ([single] if single.exists() else [])


def seed_of(result_file: Path) -> str:
    return result_file.name.rsplit("_s", 1)[-1]


def load(files: list[Path]) -> list[dict]:
    return [json.loads(f.read_text()) for f in files]


def fmt(values: list[float]) -> str:
    if not values:
        return "–"
    v = np.array(values)
    return f"{v.mean():.4f}" + (f" ± {v.std(ddof=1):.4f}" if len(v) > 1 else "")


def valid(out: Path, files: list[Path]) -> str:
    vals = [artifacts.read_meta(out / f.name.replace(".test.json", ".safetensors"))["valid"].get("ndcg@10") for f in files]
    return fmt([v for v in vals if v is not None])


def cold_users(ds_path: Path, files: list[Path]) -> set[str]:
    """Users whose (single) test target occurs 1..COLD times in the dataset's train split."""
    ds = D.load(str(ds_path))
    counts = train_counts(ds)
    index = {iid: i for i, iid in enumerate(ds.item_ids)}
    out = set()
    for user, rec in rankings(files[0], "targets").items():
        c = [counts[index[t]] for t in rec]
        if all(1 <= x <= COLD for x in c):
            out.add(user)
    return out


def rankings(result_file: Path, field: str = "ranks") -> dict[str, list]:
    path = json.loads(result_file.read_text())["rankings"]
    rows = (json.loads(line) for line in Path(path).read_text().splitlines() if line.strip())
    return {str(r["user_id"]): r[field] for r in rows}


def per_user_mean(files: list[Path]) -> dict[str, float]:
    return stats.mean_per_user([stats.per_user(rankings(f), "ndcg@10") for f in files])


def test(a_files: list[Path], b_files: list[Path], users: set[str] | None = None) -> str:
    seeds_a = {seed_of(f) for f in a_files}
    pairs = [(a, b) for a in a_files for b in b_files if seed_of(a) == seed_of(b)]
    if not pairs and len(b_files) == 1 and len(seeds_a):
        pairs = [(a, b_files[0]) for a in a_files]  # a seedless row (zero-shot) against every seed of the other
    if not pairs:
        return "–"
    a = per_user_mean(sorted({p[0] for p in pairs}))
    b = per_user_mean(sorted({p[1] for p in pairs}))
    if users is not None:
        a = {u: v for u, v in a.items() if u in users}
        b = {u: v for u, v in b.items() if u in users}
    t = stats.paired_test(a, b)
    return f"{t['mean_diff']:+.4f} (t p={t['t_p']:.3g}, W p={t['wilcoxon_p']:.3g}; {t['better']}/{t['worse']})"


def cold_mean(files: list[Path], cold: set[str]) -> str:
    """NDCG@10 over the cold-target users, mean ± std over the seeds."""
    vals = []
    for f in files:
        per = stats.per_user(rankings(f), "ndcg@10")
        vals.append(float(np.mean([per[u] for u in cold if u in per])))
    return f"{fmt(vals)} (n={len(cold)})"


def full_table(out: Path, seeds: list[str], cold: set[str]) -> None:
    print("## Full target data\n")
    print("| model | seeds | valid N@10 | test R@10 | test N@10 | test R@20 | test N@20 | cold N@10 | vs | ΔN@10, all users | ΔN@10, cold targets |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [*FULL, ("MISSRec, Instruments, zero-shot (no fine-tuning)", "missrec_zeroshot", "missrec_scratch"),
            ("UniSRec, Instruments, zero-shot (no fine-tuning)", "unisrec_zeroshot", "unisrec_scratch")]
    for label, name, vs in rows:
        files = runs(out, name, seeds)
        if not files:
            print(f"| {label} | (missing) |" + " |" * 9)
            continue
        res = load(files)
        cols = [fmt([r["metrics"][m] for r in res]) for m in METRICS]
        base = runs(out, vs, seeds) if vs else []
        tests = [test(base, files), test(base, files, cold)] if base else ["–", "–"]
        print(f"| {label} | {len(files)} | {valid(out, files)} | " + " | ".join(cols) + f" | {cold_mean(files, cold)} | {vs or '–'} | " + " | ".join(tests) + " |")


def curve_table(out: Path, seeds: list[str], fractions: list[str], cold: set[str], model: str, choice_file: str) -> None:
    """The learning curve of MODEL ("msm4sr": the choice is the pre-training source; "unisrec": the transfer mode),
    pre-trained vs from scratch at every share of users, the full data (share 1) last."""
    choice_path = out / choice_file
    if not choice_path.exists():
        return
    choice = choice_path.read_text().strip()
    if model == "msm4sr":
        title = f"MSM4SR pre-trained on '{choice}' vs MSM4SR from scratch"
        why = "The source is the cross-domain one (of several, the best by mean validation NDCG@10)."
        names = {"scratch": "curve_scratch_u{}", "pre": f"curve_{choice}_u{{}}"}
    else:
        title = f"UniSRec pre-trained on Instruments, transfer {choice}, vs UniSRec from scratch"
        why = "The transfer mode is the one with the better mean validation NDCG@10 on the full data."
        names = {"scratch": "curve_unisrec_scratch_u{}", "pre": f"curve_unisrec_{choice}_u{{}}"}
    print(f"\n## Learning curve: {title}\n")
    print("Share = the share of Scientific users whose train items are trained on (the others' are history only); every")
    print(f"share is tested on all users. {why}\n")
    print("| share of users | scratch test N@10 | pre-trained test N@10 | ΔN@10, all users | scratch cold N@10 | pre-trained cold N@10 | ΔN@10, cold targets |")
    print("|---|---|---|---|---|---|---|")
    for frac in [*fractions, "1"]:
        if frac == "1":
            a, b = runs(out, f"{model}_scratch", seeds), runs(out, f"{model}_{choice}", seeds)
        else:
            a, b = runs(out, names["scratch"].format(frac), seeds), runs(out, names["pre"].format(frac), seeds)
        common = {seed_of(f) for f in a} & {seed_of(f) for f in b}  # a share's row pairs the seeds both have run
        a, b = [f for f in a if seed_of(f) in common], [f for f in b if seed_of(f) in common]
        if not a or not b:
            print(f"| {frac} | (missing) |" + " |" * 5)
            continue
        ra, rb = load(a), load(b)
        share = frac if len(a) == len(seeds) else f"{frac} ({len(a)} of {len(seeds)} seeds)"
        print(f"| {share} | {fmt([r['metrics']['ndcg@10'] for r in ra])} | {fmt([r['metrics']['ndcg@10'] for r in rb])} | {test(a, b)} | "
              f"{cold_mean(a, cold)} | {cold_mean(b, cold)} | {test(a, b, cold)} |")


CARRIED = re.compile(r" \(run at [^)]*\)$")  # the mark of a row or section taken from an earlier file


def carry_over(new: str, previous: str) -> str:
    """`new` with what it lacks taken from `previous`: rows shown as "(missing)" and whole sections (## headings).
    Each taken row or section is marked with the commit of the run that measured it; one already marked keeps its
    mark, so a figure is never credited to a later run."""
    found = re.search(r"at commit (\S+?):", previous)
    mark = f" (run at {found.group(1) if found else 'an earlier commit'})"
    old, fresh = _sections(previous), _sections(new)
    out = []
    for heading, lines in fresh.items():
        first, previous_lines = old.get(heading, ("", []))
        rows = {_label(line): line for line in previous_lines if _is_row(line)}
        section_mark = found_mark.group(0) if (found_mark := CARRIED.search(first)) else mark  # a carried section's rows: its commit
        out.append(lines[0])
        for line in lines[1]:
            cells = line.split(" | ")
            if _is_row(line) and len(cells) > 1 and cells[1].strip() == "(missing)" and "(missing)" not in rows.get(_label(line), "(missing)"):
                line = _marked(rows[_label(line)], section_mark)
            out.append(line)
    for heading, (first, lines) in old.items():
        if heading not in fresh:
            out.extend([""] if out and out[-1] else [])
            out.extend([first if CARRIED.search(first) else first + mark, *lines])
    return "\n".join(out) + "\n"


def _sections(text: str) -> dict[str, tuple[str, list[str]]]:
    """'## ' heading (mark stripped) -> (heading line, the lines up to the next heading); the text before the first
    heading is left out."""
    sections, current = {}, None
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("## "):
            current = CARRIED.sub("", line)
            sections[current] = (line, [])
        elif current is not None:
            sections[current][1].append(line)
    return sections


def _is_row(line: str) -> bool:
    return line.startswith("| ") and not line.startswith("| model |") and not line.startswith("| share of users |")


def _label(row: str) -> str:
    label = row.split(" | ")[0][2:].strip()
    return CARRIED.sub("", label).split(" (")[0] if label[:1].isdigit() else CARRIED.sub("", label)


def _marked(row: str, mark: str) -> str:
    cells = row.split(" | ")
    return row if CARRIED.search(cells[0]) else " | ".join([cells[0] + mark, *cells[1:]])


def main(argv: list[str]) -> None:
    previous = None
    if argv[:1] == ["--previous"]:
        previous, argv = Path(argv[1]), argv[2:]
    if previous is not None:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            tables(argv)
        print(carry_over(buffer.getvalue(), previous.read_text(encoding="utf-8")), end="")
    else:
        tables(argv)


def tables(argv: list[str]) -> None:
    out = Path(argv[0])
    sep = argv.index("--") if "--" in argv else len(argv)
    seeds, fractions = argv[1:sep], argv[sep + 1:]
    any_run = next((f for _, name, _ in FULL if (f := runs(out, name, seeds))), [])  # rankings hold every test target
    cold = cold_users(out / "sci.safetensors", any_run) if any_run else set()
    full_table(out, seeds, cold)
    curve_table(out, seeds, fractions, cold, "msm4sr", "curve_source.txt")
    curve_table(out, seeds, fractions, cold, "unisrec", "curve_unisrec_mode.txt")


if __name__ == "__main__":
    main(sys.argv[1:])
