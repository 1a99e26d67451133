"""`mmrec recommend` throughput and memory: histories per second and peak RSS at 10k and 100k histories.

    .venv/bin/python bench/recommend_bench.py [--sizes 10000,100000] [--items 10000] [--device cpu]
    .venv/bin/python bench/recommend_bench.py --command [--sizes 20000,200000]

Each size runs in a fresh process (peak RSS is per process): synthetic JSONL histories (1-50 item
ids, newest last, 2% unknown ids) are streamed from a file through the same library path as the
command (read_histories -> recommend -> JSON lines) into /dev/null, with a SASRec of the default
size (hidden 64, 2 layers, max_len 50) on a catalogue of --items items. Flat memory means the peak
at 100k is about the peak at 10k. Prints one line per size and the growth, and beside each figure the same run with
SASRec's last layer over every position (its user side before `last_query`), the two alternating, the faster of
two runs each; a figure, not a test.

--command times the command itself, `mmrec recommend` in a fresh process, as a user runs it: a SASRec of the example
config trained for three epochs on the example Scientific data (1,585 items; the weights do not change the work), and
the example users' own histories (as many as --sizes asks, the 2,928 users repeated) as input, written to a file.
Its figure is the slope between the two sizes, (n2 - n1) / (t2 - t1), so start-up (imports, loading) does not count;
each size runs three times, alternating, and the fastest counts. Peak RSS is per process (os.wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def write_histories(path: str, n: int, num_items: int, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for u in range(n):
            items = [f"i{i}" for i in rng.integers(0, num_items, size=int(rng.integers(1, 51)))]
            if rng.random() < 0.02:
                items.append("unknown-item")
            f.write(json.dumps({"user_id": f"new{u}", "items": items}) + "\n")


def run_one(n: int, num_items: int, device: str, batch: int) -> dict:
    import torch

    from mmrec_cli.evaluation import recommend as R
    from mmrec_cli.models import sasrec
    from mmrec_cli.training.distributed import resolve_device

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "h.jsonl")
        write_histories(path, n, num_items)
        torch.manual_seed(0)
        model = sasrec.Model(sasrec.Config(), num_items).to(resolve_device(device))
        item_ids = [f"i{i}" for i in range(num_items)]
        cfg = R.RecommendConfig(top_k=10, exclude_history=True, batch_size=batch)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        def timed() -> tuple[float, R.Stats]:
            stats = R.Stats()
            t0 = time.perf_counter()
            with open(os.devnull, "w") as out:
                for row, items, scores in R.recommend(model, R.read_histories(path, item_ids, [], stats), num_items, cfg):
                    out.write(json.dumps(R.record(row, items, scores, item_ids)) + "\n")
            return time.perf_counter() - t0, stats

        # the peer: the user side as SASRec computed it before `last_query`, every position of the last layer;
        # the two alternate, twice each, and the faster of each pair counts (less noise on a shared machine)
        ours = model.users
        peer_users = lambda b: model.encode(b["items"])[torch.arange(len(b["lengths"])), (b["lengths"] - 1).clamp(min=0)]  # noqa: E731
        secs = peer = float("inf")
        for _ in range(2):
            model.users = ours
            t, stats = timed()
            secs = min(secs, t)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            model.users = peer_users
            peer = min(peer, timed()[0])
    return {"histories": stats.histories, "seconds": round(secs, 2), "per_second": round(stats.histories / secs), "per_second_all_positions": round(stats.histories / peer), "peak_rss_mib": round(peak / 1024, 1), "rss_before_mib": round(base / 1024, 1), "unknown": stats.unknown_items}


def timed_command(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `mmrec` process."""
    t0 = time.perf_counter()
    p = subprocess.Popen([str(Path(sys.executable).with_name("mmrec")), *args], stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"mmrec {' '.join(args)} failed ({p.returncode})")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def command_slope(sizes: list[int], batch: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_nproc_bench import example_model  # the example data prepared and its SASRec trained briefly

    with tempfile.TemporaryDirectory() as tmp:
        model, ds = (str(p) for p in example_model(Path(tmp)))
        from mmrec_cli.data import dataset as D

        data = D.load(ds)
        lines = [json.dumps({"user_id": data.user_ids[u], "items": [data.item_ids[i] for i in data.sequence(u)]}) for u in range(data.num_users)]
        mean_len = sum(len(data.sequence(u)) for u in range(data.num_users)) / data.num_users
        for n in sizes:
            with open(f"{tmp}/h{n}.jsonl", "w") as f:
                f.writelines(lines[k % len(lines)] + "\n" for k in range(n))
        best = {n: (float("inf"), 0.0) for n in sizes}
        for _ in range(3):
            for n in sizes:
                t, rss = timed_command(["recommend", model, ds, "-i", f"{tmp}/h{n}.jsonl", "-o", f"{tmp}/out.jsonl", "--batch-size", str(batch)])
                best[n] = (min(best[n][0], t), max(best[n][1], rss))
        for n in sizes:
            print(f"{n:>8} histories: {best[n][0]:.2f} s, peak RSS {best[n][1]:.0f} MiB", flush=True)
        (n1, (t1, _)), (n2, (t2, _)) = sorted(best.items())[:1] + sorted(best.items())[-1:]
        print(f"mmrec recommend beyond start-up: {(n2 - n1) / (t2 - t1):,.0f} histories/s (slope from {n1} to {n2}); SASRec, {data.num_items} items, the example users' histories (mean {mean_len:.1f} items), top-10, batch {batch}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", help="numbers of histories (default 10000,100000; with --command 20000,200000)")
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--command", action="store_true", help="time `mmrec recommend` itself on the example data (slope between --sizes)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.command:
        command_slope([int(s) for s in (a.sizes or "20000,200000").split(",")], a.batch_size)
        return
    a.sizes = a.sizes or "10000,100000"
    if a.one:
        print(json.dumps(run_one(a.one, a.items, a.device, a.batch_size)))
        return
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        p = subprocess.run([sys.executable, __file__, "--one", str(n), "--items", str(a.items), "--device", a.device, "--batch-size", str(a.batch_size)], capture_output=True, text=True, check=True)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{r['histories']:>7} histories: {r['per_second']:>6} histories/s ({r['seconds']} s; {r['per_second_all_positions']}/s with the last layer over every position), peak RSS {r['peak_rss_mib']} MiB (before scoring {r['rss_before_mib']} MiB); {a.items} items, top-10, {a.device}", flush=True)
    if len(rows) > 1:
        print(f"peak RSS growth from {rows[0]['histories']} to {rows[-1]['histories']} histories: {rows[-1]['peak_rss_mib'] - rows[0]['peak_rss_mib']:+.1f} MiB")


if __name__ == "__main__":
    main()
