"""The table of bench/defaults_sweep.sh: per model, every setting's mean validation metric on each domain, its rank
there, and its mean rank (docs/results/defaults.md).

    python bench/defaults_table.py KEPT_DIR [MODEL ...]
    python bench/defaults_table.py --keep OUT_DIR KEPT_DIR SOURCE MODEL:DOMAIN ...

The table is built from the kept results, KEPT_DIR/<model>_<domain>.csv (a finished sweep's results.csv: one row
per setting, the swept keys between the `setting` column and the first `valid_` one, and the metric's mean over
seeds in `valid_<metric>_mean`) with KEPT_DIR/<model>_<domain>.json beside it saying where it came from
({"source": ...}). They live in the repository, so the table outlives the sweeps' run folders. `--keep` copies
the finished sweeps OUT_DIR/<model>_<domain>/results.csv of the pairs named into KEPT_DIR, with SOURCE (the
command and commit) as their source; a copy whose content is already kept is left as it is.

Every model with kept results gets its table, in the model registry's order, and so does each MODEL named (which
says that no sweep has finished yet when none has). The setting to prefer has the best mean rank over the two
domains (ties: the better of the two ranks' worse one, then the higher mean of the metric relative to each domain's
best). The example config's values come from examples/configs/, read from the current directory (the repository
root).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from mmrec_cli import models as registry
from mmrec_cli.io.atomic import write_text

DOMAINS = {"sci": "Scientific", "instr": "Instruments"}


def read(path: Path) -> tuple[dict, list, str]:
    """A kept sweep's mean validation metric per setting (a tuple of the swept keys' values), the keys and the
    metric."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    first_valid = next(i for i, k in enumerate(header) if k.startswith("valid_"))
    keys = header[header.index("setting") + 1 : first_valid]
    metric = next(k for k in header if k.startswith("valid_") and k.endswith("_mean"))[len("valid_"):-len("_mean")]
    return {tuple(r[k] for k in keys): float(r[f"valid_{metric}_mean"]) for r in rows}, keys, metric


def source(path: Path) -> str:
    return json.loads(path.with_suffix(".json").read_text())["source"]


def example_setting(model: str, keys: list) -> tuple:
    """The example config's values of the swept keys (examples/configs/<model>_finetune.json or <model>.json, as the
    script's config_of)."""
    finetune = Path(f"examples/configs/{model}_finetune.json")
    config = json.loads((finetune if finetune.is_file() else Path(f"examples/configs/{model}.json")).read_text())
    return tuple(str(config[k.split(".")[0]].get(k.split(".")[1], "")) for k in keys)


def kept(folder: Path, model: str) -> list[Path]:
    return [f for f in (folder / f"{model}_{d}.csv" for d in DOMAINS) if f.is_file()]


def one_domain(model: str, path: Path) -> list[str]:
    """The table of a model with kept results on one domain only: nothing is preferred yet."""
    table, keys, metric = read(path)
    domain = path.stem.rsplit("_", 1)[1]
    other = DOMAINS[next(d for d in DOMAINS if d != domain)]
    current = example_setting(model, keys)
    name = DOMAINS[domain]
    lines = [f"## {model}", "", f"Validation {metric} on {name}, mean over seeds; * the example config's; no {other} "
             "sweep has finished yet, so no setting is preferred yet.", ""]
    lines += ["| | " + " | ".join(f"`{k}`" for k in keys) + f" | {name} | rank |", "|---|" + "---|" * (len(keys) + 2)]
    for rank, s in enumerate(sorted(table, key=table.get, reverse=True), 1):
        lines.append(f"| {'*' if s == current else ''} | " + " | ".join(s) + f" | {table[s]:.4f} | {rank} |")
    return lines + ["", f"{name}: {source(path)}.", ""]


def ranks(table: dict) -> dict:
    """1 for a domain's best setting; equal figures share a rank."""
    order = sorted(table.values(), reverse=True)
    return {s: 1 + order.index(v) for s, v in table.items()}


def two_domains(model: str, folder: Path) -> list[str]:
    sci_path, ins_path = folder / f"{model}_sci.csv", folder / f"{model}_instr.csv"
    (sci, keys, metric), (ins, _, _) = read(sci_path), read(ins_path)
    current = example_setting(model, keys)
    rs, ri = ranks(sci), ranks(ins)
    rel = {s: (sci[s] / max(sci.values()) + ins[s] / max(ins.values())) / 2 for s in sci}
    order = sorted(sci, key=lambda s: ((rs[s] + ri[s]) / 2, max(rs[s], ri[s]), -rel[s]))
    lines = [f"## {model}", "", f"Validation {metric}, mean over seeds; → the preferred setting; * the example config's.", ""]
    lines += ["| | " + " | ".join(f"`{k}`" for k in keys) + " | Scientific | rank | Instruments | rank | mean rank | relative to each best |",
              "|---|" + "---|" * len(keys) + "---|---|---|---|---|---|"]
    for s in order:
        mark = ("→" if s == order[0] else "") + ("*" if s == current else "")
        lines.append(f"| {mark} | " + " | ".join(s) + f" | {sci[s]:.4f} | {rs[s]} | {ins[s]:.4f} | {ri[s]} | "
                     f"{(rs[s] + ri[s]) / 2:g} | {rel[s]:.3f} |")
    best_sci, best_ins = max(sci, key=sci.get), max(ins, key=ins.get)
    lines += ["", f"Best on Scientific alone: {', '.join(f'{k}={v}' for k, v in zip(keys, best_sci))}; on Instruments "
              f"alone: {', '.join(f'{k}={v}' for k, v in zip(keys, best_ins))}.", ""]
    return lines + [f"Scientific: {source(sci_path)}.", "", f"Instruments: {source(ins_path)}.", ""]


def model_table(folder: Path, model: str) -> list[str]:
    done = kept(folder, model)
    if len(done) == 2:
        return two_domains(model, folder)
    if done:
        return one_domain(model, done[0])
    return [f"## {model}", "", "(no sweep finished yet)", ""]


def table(folder: Path, asked: list[str]) -> list[str]:
    shown = [m for m in registry.names() if m in asked or kept(folder, m)]
    return [line for model in shown for line in model_table(folder, model)]


def keep(out: Path, folder: Path, where: str, pairs: list[str]) -> None:
    """Copy each finished sweep out/<model>_<domain>/results.csv to folder/<model>_<domain>.csv, its source beside."""
    folder.mkdir(parents=True, exist_ok=True)
    for pair in pairs:
        name = pair.replace(":", "_")
        results = out / name / "results.csv"
        if not results.is_file():
            continue
        text, target = results.read_text(), folder / f"{name}.csv"
        if target.is_file() and target.read_text() == text:
            continue
        write_text(target, text)
        write_text(target.with_suffix(".json"), json.dumps({"source": where}, indent=1) + "\n")
        print(f"kept {results} as {target}", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1] == "--keep":
        keep(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5:])
    else:
        print("\n".join(table(Path(sys.argv[1]), sys.argv[2:])))
