"""`mmrec eval --nproc`: users per second of one process beside two, on the same model and data, in one run.

    .venv/bin/python bench/eval_nproc_bench.py [--model M --dataset D] [--synthetic-items 50000] [--synthetic-users 10000] [--work DIR]

Trains a SASRec on examples/scientific (examples/configs/sasrec.json, 3 epochs) unless --model and --dataset
are given, then times the whole `mmrec eval --split test --rankings` command, start-up included, with --nproc 1
and --nproc 2 alternately, the faster of two runs each, and checks that the two give the same metrics and the
same --rankings bytes: once with PyTorch's default threads in every process, once with OMP_NUM_THREADS at half
of them (the cores shared out between the two processes; the one process then has as many). The example's 1,585
items rank in moments, so start-up weighs there; a synthetic catalogue of --synthetic-items items (random
histories of 5 to 30 items, `prepare --format sequences`; the SASRec trained for one epoch on 2% of the users,
`subsample`, every user evaluated) shows the ranking itself (--synthetic-items 0 skips it). A figure, not a
test: on a shared machine the numbers move.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "examples" / "configs" / "sasrec.json"


def mmrec(*args, env: dict | None = None) -> None:
    """Run one mmrec command (with `env` added to the environment); its stderr becomes the error if it fails."""
    p = subprocess.run([sys.executable, "-m", "mmrec_cli", *map(str, args)], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise SystemExit(f"mmrec {' '.join(map(str, args[:2]))} failed ({p.returncode}): {p.stderr.strip()}")


def example_model(work: Path) -> tuple[Path, Path]:
    """(model, dataset): examples/scientific prepared, and a SASRec trained on it for 3 epochs."""
    ds, model = work / "scientific.safetensors", work / "scientific-sasrec.safetensors"
    mmrec("prepare", ROOT / "examples" / "scientific", "-o", ds)
    mmrec("finetune", "sasrec", ds, "-o", model, "--config", EXAMPLE_CONFIG, "--epochs", 3, "--device", "cpu")
    return model, ds


def synthetic_model(work: Path, items: int, users: int, seed: int = 0) -> tuple[Path, Path]:
    """(model, dataset): random histories over `items` items; a SASRec trained for one epoch on 2% of the users."""
    import numpy as np

    rng = np.random.default_rng(seed)
    histories = [list(rng.choice(items, size=int(rng.integers(5, 31)), replace=False)) for _ in range(users)]
    for i in sorted(set(range(items)) - {i for h in histories for i in h}):  # every item in some history
        histories[int(rng.integers(users))].insert(0, i)
    seqs = work / "synthetic.tsv"
    seqs.write_text("".join(f"u{u}\t" + " ".join(f"i{i}" for i in h) + "\n" for u, h in enumerate(histories)))
    full, sub, model = work / "synthetic.safetensors", work / "synthetic-train.safetensors", work / "synthetic-sasrec.safetensors"
    mmrec("prepare", seqs, "--format", "sequences", "-o", full)
    mmrec("subsample", full, "--keep-users", 0.02, "--seed", 1, "-o", sub)
    mmrec("finetune", "sasrec", sub, "-o", model, "--config", EXAMPLE_CONFIG, "--epochs", 1, "--device", "cpu")
    return model, sub


def timed_eval(model: Path, ds: Path, nproc: int, out: Path, env: dict) -> tuple[float, dict, bytes]:
    """(wall seconds of the whole command, metrics, --rankings bytes) of `mmrec eval --split test --nproc N`."""
    t0 = time.perf_counter()
    mmrec("eval", model, ds, "--split", "test", "--device", "cpu", "--nproc", nproc, "-o", out.with_suffix(".json"), "--rankings", out.with_suffix(".jsonl"), env=env)
    seconds = time.perf_counter() - t0
    return seconds, json.loads(out.with_suffix(".json").read_text())["metrics"], out.with_suffix(".jsonl").read_bytes()


def compare(label: str, model: Path, ds: Path, work: Path, threads: int | None = None) -> None:
    """Time --nproc 1 and 2 alternately, best of two each, every process with `threads` threads (OMP_NUM_THREADS;
    None: PyTorch's default); print users/s, the speed-up and whether the results agree."""
    from mmrec_cli.data import dataset as D

    env = {} if threads is None else {"OMP_NUM_THREADS": str(threads)}
    label = label if threads is None else f"{label}, OMP_NUM_THREADS={threads}"
    best = {1: float("inf"), 2: float("inf")}
    outputs: list[tuple[dict, bytes]] = []
    for _ in range(2):
        for n in (1, 2):
            seconds, metrics, rankings = timed_eval(model, ds, n, work / f"eval-{len(outputs)}", env)
            best[n] = min(best[n], seconds)
            outputs.append((metrics, rankings))
    users, items = outputs[0][0]["users"], D.load(str(ds)).num_items
    same = "yes" if all(o == outputs[0] for o in outputs) else "NO"
    rates = "  ".join(f"--nproc {n}: {users / best[n]:,.0f} users/s ({best[n]:.1f} s)" for n in (1, 2))
    print(f"{label}: {users:,} users x {items:,} items  {rates}  speed-up {best[1] / best[2]:.2f}x  identical metrics and rankings: {same}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="A model artifact to evaluate instead of training one on examples/scientific.")
    ap.add_argument("--dataset", type=Path, help="The dataset artifact --model was trained on.")
    ap.add_argument("--synthetic-items", type=int, default=50000, help="Items of the synthetic catalogue (0: skip it).")
    ap.add_argument("--synthetic-users", type=int, default=10000)
    ap.add_argument("--work", type=Path, help="Folder for the datasets, models and results (default: a temporary one).")
    a = ap.parse_args()
    if (a.model is None) != (a.dataset is None):
        ap.error("give --model and --dataset together")
    sys.path.insert(0, str(ROOT))
    import torch

    threads = torch.get_num_threads()
    print(f"{os.cpu_count()} cpus, {threads} threads a process by default; eval --split test --rankings (top 20), --batch-size 512, --device cpu", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = (a.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        runs = [("given model" if a.model else "scientific", *((a.model.resolve(), a.dataset.resolve()) if a.model else example_model(work)))]
        if a.synthetic_items:
            runs.append(("synthetic", *synthetic_model(work, a.synthetic_items, a.synthetic_users)))
        for label, model, ds in runs:
            compare(label, model, ds, work)
            compare(label, model, ds, work, max(1, threads // 2))


if __name__ == "__main__":
    main()
