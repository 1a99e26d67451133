"""`mmrec pretrain --nproc`: seconds per pre-training epoch with one process beside two, same data and settings.

    .venv/bin/python bench/pretrain_nproc_bench.py [--model msm4sr] [--epochs 2] [--work DIR]

Prepares examples/scientific with its CLIP text and image features (`prepare --features-out`), then times the
whole `mmrec pretrain MODEL --config examples/configs/MODEL_pretrain.json --epochs N` command, start-up included,
with --nproc 1 and --nproc 2 alternately, the faster of two runs each: once with the default threads (PyTorch's
for one process; `--nproc` gives each process the cores divided by the processes), once with OMP_NUM_THREADS at
half of PyTorch's default in every process. Each
run's seconds per epoch come from its own training log (OUTPUT.log.jsonl), so start-up is printed apart. Under
--nproc 2 each global batch is split over the two processes (distributed data parallel over gloo), so both
runs take the same optimisation steps (dropout masks aside). A figure, not a test: on a shared machine the
numbers move.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from eval_nproc_bench import mmrec  # noqa: E402  (one mmrec command, its stderr the error if it fails)


def example_data(work: Path) -> tuple[Path, Path]:
    """(dataset, features): examples/scientific and its provided CLIP text and image vectors."""
    ds, feats = work / "scientific.safetensors", work / "clip.safetensors"
    if not ds.exists():
        mmrec("prepare", ROOT / "examples" / "scientific", "-o", ds, "--features-out", feats)
    return ds, feats


def timed_pretrain(model: str, ds: Path, feats: Path, epochs: int, nproc: int, out: Path, env: dict) -> dict:
    """Wall seconds of the whole command and the median seconds of its epochs."""
    for stale in (out, Path(f"{out}.log.jsonl"), Path(f"{out}.ckpt")):
        stale.unlink(missing_ok=True)
    config = ROOT / "examples" / "configs" / f"{model}_pretrain.json"
    t0 = time.perf_counter()
    mmrec("pretrain", model, ds, "--features", feats, "--config", config, "--epochs", epochs, "--device", "cpu", "--nproc", nproc, "-o", out, env=env)
    wall = time.perf_counter() - t0
    log = [json.loads(line) for line in Path(f"{out}.log.jsonl").read_text().splitlines()]
    epoch_s = sorted(e["seconds"] for e in log)[len(log) // 2]
    return {"wall": wall, "epoch": epoch_s}


def compare(model: str, ds: Path, feats: Path, epochs: int, work: Path, threads: int | None = None) -> None:
    """--nproc 1 and 2 alternately, best of two each; prints seconds per epoch and the speed-up."""
    env = {} if threads is None else {"OMP_NUM_THREADS": str(threads)}
    label = "default threads" if threads is None else f"OMP_NUM_THREADS={threads}"
    best: dict[int, dict] = {}
    for r in range(2):
        for n in (1, 2):
            run = timed_pretrain(model, ds, feats, epochs, n, work / f"pre-{n}-{r}.safetensors", env)
            if n not in best or run["epoch"] < best[n]["epoch"]:
                best[n] = run
    rates = "  ".join(f"--nproc {n}: {best[n]['epoch']:.1f} s/epoch ({best[n]['wall']:.1f} s in all)" for n in (1, 2))
    print(f"{model} pretrain, {label}: {rates}  speed-up per epoch {best[1]['epoch'] / best[2]['epoch']:.2f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="msm4sr", help="A model with a pre-training stage and examples/configs/MODEL_pretrain.json.")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", type=Path, help="Folder for the data and models (default: a temporary one).")
    a = ap.parse_args()
    import torch

    threads = torch.get_num_threads()
    print(f"{os.cpu_count()} cpus, {threads} threads a process by default; {a.model} pretrain, {a.epochs} epochs a run, --device cpu", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = (a.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        ds, feats = example_data(work)
        compare(a.model, ds, feats, a.epochs, work)
        compare(a.model, ds, feats, a.epochs, work, max(1, threads // 2))


if __name__ == "__main__":
    main()
