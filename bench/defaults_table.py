"""The table of bench/defaults_sweep.sh: per model, every setting's mean validation metric on each domain, its rank
there, and its mean rank (docs/results/defaults.md).

    python bench/defaults_table.py OUT_DIR [MODEL ...]

Every model with a finished sweep in OUT_DIR (OUT_DIR/<model>_sci or <model>_instr holding results.csv) gets its
table, in the model registry's order, and so does each MODEL named (which says that no sweep has finished yet when
none has): running one model's sweeps rewrites the file without dropping the other models' tables. The setting to
prefer has the best mean rank over the two domains (ties: the better of the two ranks' worse one, then the higher
mean of the metric relative to each domain's best). The example config's values come from examples/configs/, read
from the current directory (the repository root).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from mmrec_cli import models as registry

DOMAINS = {"sci": "Scientific", "instr": "Instruments"}


def read(folder: Path) -> tuple[dict, list, str]:
    """A sweep's mean validation metric per setting (a tuple of the swept keys' values), the keys and the metric."""
    rows = list(csv.DictReader(open(folder / "results.csv")))
    metric = next(k for k in rows[0] if k.startswith("valid_") and k.endswith("_mean"))[len("valid_"):-len("_mean")]
    keys = json.loads((folder / "settings.json").read_text())["keys"]
    return {tuple(r[k] for k in keys): float(r[f"valid_{metric}_mean"]) for r in rows}, keys, metric


def example_setting(model: str, keys: list) -> tuple:
    """The example config's values of the swept keys (examples/configs/<model>_finetune.json or <model>.json, as the
    script's config_of)."""
    finetune = Path(f"examples/configs/{model}_finetune.json")
    config = json.loads((finetune if finetune.is_file() else Path(f"examples/configs/{model}.json")).read_text())
    return tuple(str(config[k.split(".")[0]].get(k.split(".")[1], "")) for k in keys)


def finished(out: Path, model: str) -> list[Path]:
    return [f for f in (out / f"{model}_{d}" for d in DOMAINS) if (f / "results.csv").is_file()]


def one_domain(model: str, folder: Path, out: Path) -> list[str]:
    """The table of a model whose sweep has finished on one domain only: nothing is preferred yet."""
    table, keys, metric = read(folder)
    domain = folder.name.rsplit("_", 1)[1]
    other = out / f"{model}_{next(d for d in DOMAINS if d != domain)}"
    current = example_setting(model, keys)
    name = DOMAINS[domain]
    lines = [f"## {model}", "", f"Validation {metric} on {name}, mean over seeds; * the example config's; the sweep in "
             f"{other} has not finished, so no setting is preferred yet.", ""]
    lines += ["| | " + " | ".join(f"`{k}`" for k in keys) + f" | {name} | rank |", "|---|" + "---|" * (len(keys) + 2)]
    for rank, s in enumerate(sorted(table, key=table.get, reverse=True), 1):
        lines.append(f"| {'*' if s == current else ''} | " + " | ".join(s) + f" | {table[s]:.4f} | {rank} |")
    return lines + [""]


def ranks(table: dict) -> dict:
    """1 for a domain's best setting; equal figures share a rank."""
    order = sorted(table.values(), reverse=True)
    return {s: 1 + order.index(v) for s, v in table.items()}


def two_domains(model: str, out: Path) -> list[str]:
    (sci, keys, metric), (ins, _, _) = read(out / f"{model}_sci"), read(out / f"{model}_instr")
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
    return lines


def model_table(out: Path, model: str) -> list[str]:
    done = finished(out, model)
    if len(done) == 2:
        return two_domains(model, out)
    if done:
        return one_domain(model, done[0], out)
    return [f"## {model}", "", f"(no sweep finished yet: {out / f'{model}_sci'}, {out / f'{model}_instr'})", ""]


def table(out: Path, asked: list[str]) -> list[str]:
    shown = [m for m in registry.names() if m in asked or finished(out, m)]
    return [line for model in shown for line in model_table(out, model)]


if __name__ == "__main__":
    print("\n".join(table(Path(sys.argv[1]), sys.argv[2:])))
