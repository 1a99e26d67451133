"""The table of bench/unisrec_packed.sh: UniSRec pre-trained one example per prefix against packed, each transferred.

    .venv/bin/python bench/unisrec_packed_table.py OUT_DIR SEED...

Reads OUT_DIR's runs (as bench/transfer_table.py does): pre_unisrec_instr and pre_unisrec_packed_instr (their
training logs), unisrec_{scratch,inductive,transductive}_sSEED and unisrec_packed_{inductive,transductive}_sSEED
(their test results and rankings), and prints markdown: pre-training time and loss per epoch, then test figures over
the seeds with paired tests of each packed row against the per-prefix row of its mode and against scratch.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transfer_table as T  # noqa: E402  (the transfer table's readers and tests)

ROWS = [  # (label, run name without the seed, rows it is tested against)
    ("scratch (IDs + text)", "unisrec_scratch", ()),
    ("per prefix, transfer inductive", "unisrec_inductive", ("unisrec_scratch",)),
    ("packed, transfer inductive", "unisrec_packed_inductive", ("unisrec_inductive", "unisrec_scratch")),
    ("per prefix, transfer transductive", "unisrec_transductive", ("unisrec_scratch",)),
    ("packed, transfer transductive", "unisrec_packed_transductive", ("unisrec_transductive", "unisrec_scratch")),
]


def pretraining(out: Path) -> None:
    print("## Pre-training on Instruments (seed 2020)\n")
    print("| pre-training | epochs | s per epoch (median) | loss, first epoch | loss, last epoch |")
    print("|---|---|---|---|---|")
    for label, name in (("per prefix (the public code)", "pre_unisrec_instr"), ("packed (model.packed=true)", "pre_unisrec_packed_instr")):
        log = out / f"{name}.safetensors.log.jsonl"
        if not (out / f"{name}.safetensors").exists() or not log.exists():
            print(f"| {label} | (missing) | | | |")
            continue
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        epochs = {r["epoch"]: r for r in rows if "loss" in r}  # a resumed epoch: its last record
        first, last = epochs[min(epochs)], epochs[max(epochs)]
        secs = statistics.median(r["seconds"] for r in epochs.values())
        print(f"| {label} | {len(epochs)} | {secs:.1f} | {first['loss']:.4f} | {last['loss']:.4f} |")
    print()


def transfers(out: Path, seeds: list[str]) -> None:
    print("## Transferred to Scientific\n")
    print("| UniSRec | seeds | valid N@10 | test R@10 | test N@10 | vs | ΔN@10 (paired, all users) |")
    print("|---|---|---|---|---|---|---|")
    for label, name, against in ROWS:
        files = T.runs(out, name, seeds)
        if not files:
            print(f"| {label} | (missing) |" + " |" * 5)
            continue
        res = T.load(files)
        cols = " | ".join(T.fmt([r["metrics"][m] for r in res]) for m in ("recall@10", "ndcg@10"))
        tests = [(vs, T.test(T.runs(out, vs, seeds), files)) for vs in against if T.runs(out, vs, seeds)]
        vs = "<br>".join(v for v, _ in tests) or "–"
        print(f"| {label} | {len(files)} | {T.valid(out, files)} | {cols} | {vs} | " + ("<br>".join(t for _, t in tests) or "–") + " |")


def main(argv: list[str]) -> None:
    out, seeds = Path(argv[0]), argv[1:]
    pretraining(out)
    transfers(out, seeds)


if __name__ == "__main__":
    main(sys.argv[1:])
