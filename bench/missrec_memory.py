"""MISSRec's peak memory: `mmrec pretrain missrec` then `mmrec finetune missrec --init` on the example data.

    OMP_NUM_THREADS=1 .venv/bin/python bench/missrec_memory.py [--epochs 1] [--out DIR] [--env KEY=VALUE ...]

Each command runs as its own process (`python -m mmrec_cli`, this checkout), with the example configs
(examples/configs/missrec_pretrain.json, missrec_finetune.json) and `--epochs` epochs, on the bundled
Scientific data (2,928 users, 1,585 items; prepared into --out first). Printed per command: the peak
resident set size of the process (ru_maxrss from wait4: what `/usr/bin/time -v` calls "Maximum resident
set size"; torch and Python included), the seconds of each epoch from the command's own log, and the
process's CPU seconds. `--set` adds a setting to both commands (e.g. `--set model.recompute=false`: the
activations kept, not recomputed); `--env` adds environment variables to both commands, e.g.
`--env MALLOC_MMAP_THRESHOLD_=131072` (glibc returns freed blocks over 128 KiB to the system instead of
keeping them in its heap). stdout: one JSON line per command; stderr: the table.

As last measured (`--epochs 2`, OMP_NUM_THREADS=1, two shared cores; CPU seconds of the whole command):

    code                                      pretrain: peak MiB  s/epoch  CPU s   finetune: peak MiB  s/epoch  CPU s
    activations kept (before recomputation)               5412     87.4  165.0                 1329     29.8   66.5
    blocks recomputed                                     2461    126.2  251.6                 1196     35.4   75.4
    blocks recomputed, MALLOC_MMAP_THRESHOLD_=131072      1429    151.9  299.7                  889     44.5   95.0

The models are the same bits in all three rows; wall seconds also follow the neighbours' load. Without
the fixed threshold, glibc raises its mmap threshold to the size of each mapped block it frees (up to
32 MiB), and the freed activations of a step then stay resident in its heap: after one step of the
largest pre-training batch the heap held 1.6 GB, 1.4 GB of it free.

Since then MISSRec's training commands pin glibc's threshold at 4 MiB themselves (mmrec_cli/training/allocator.py), so a
run without --env measures that default; a MALLOC_MMAP_THRESHOLD_ given with --env wins. docs/models/missrec.md
("Training memory") has the figures of several thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCH = re.compile(r"^epoch\s+(\d+)\s+loss\s+\S+\s+([0-9.]+)s", re.M)


def run(name: str, args: list[str], env: dict) -> dict:
    """Run `python -m mmrec_cli ARGS` to the end; its peak RSS, epoch seconds and CPU seconds."""
    proc = subprocess.Popen([sys.executable, "-m", "mmrec_cli", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{name} failed (exit {proc.returncode}):\n{err}")
    epochs = [float(s) for _, s in EPOCH.findall(err)]
    return {
        "command": name,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "epoch_seconds": epochs,
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "env": {k: v for k, v in env.items() if k.startswith(("MALLOC_", "OMP_"))},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", default=None, help="folder for the dataset, features and models (default: a temporary one)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="an environment variable for both commands (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for both commands, as `mmrec --set` (repeatable)")
    a = ap.parse_args()
    env = dict(os.environ) | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for kv in a.env:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            sys.exit(f"--env {kv!r}: write KEY=VALUE")
        env[key] = value
    out = a.out or tempfile.mkdtemp(prefix="missrec_memory_")
    os.makedirs(out, exist_ok=True)
    ds, feats = os.path.join(out, "ds.safetensors"), os.path.join(out, "feats.safetensors")
    if not (os.path.exists(ds) and os.path.exists(feats)):
        subprocess.run([sys.executable, "-m", "mmrec_cli", "prepare", "examples/scientific", "-o", ds, "--features-out", feats], cwd=ROOT, env=env, check=True, stderr=subprocess.DEVNULL)
    configs = os.path.join(ROOT, "examples", "configs")
    pre, ft = os.path.join(out, "pre.safetensors"), os.path.join(out, "ft.safetensors")
    common = [ds, "--features", feats, "--epochs", str(a.epochs), *(arg for kv in a.set for arg in ("--set", kv))]
    rows = [
        run("pretrain missrec", ["pretrain", "missrec", *common, "--config", os.path.join(configs, "missrec_pretrain.json"), "-o", pre], env),
        run("finetune missrec", ["finetune", "missrec", *common, "--config", os.path.join(configs, "missrec_finetune.json"), "--init", pre, "-o", ft], env),
    ]
    for r in rows:
        print(json.dumps(r))
    print(f"{'command':<18} {'peak RSS MB':>11}  {'s/epoch':>8}  {'CPU s':>7}", file=sys.stderr)
    for r in rows:
        mean = sum(r["epoch_seconds"]) / max(1, len(r["epoch_seconds"]))
        print(f"{r['command']:<18} {r['peak_rss_mb']:>11.0f}  {mean:>8.1f}  {r['cpu_seconds']:>7.1f}", file=sys.stderr)
    extra = ' '.join([*a.env, *(f"--set {kv}" for kv in a.set)]) or 'no extra environment or settings'
    print(f"data and models in {out}; {extra}; OMP_NUM_THREADS={env['OMP_NUM_THREADS']}", file=sys.stderr)


if __name__ == "__main__":
    main()
