"""`mmrec prepare` on a large interactions CSV: rows per second and peak memory, fast path beside the row path.

    .venv/bin/python bench/prepare_bench.py [--rows 10000000] [--row-path-rows 1000000] [--dir DIR] [--keep]

Writes a synthetic CSV of --rows rows and its .gz into a temporary folder (or --dir): user_id,item_id,timestamp
with about rows/10 users (log-normal activity), Zipf-like popularity over about rows/20 items, string ids (users
'A' and 13 hex digits, items 10 digits with leading zeros), integer seconds in 2012-2023, in random order. Then
runs `mmrec prepare FILE -o OUT --drop-short` on each in a fresh process, timing the whole command (start-up
included) and reading its peak RSS from os.wait4. The row path (MMREC_PREPARE_ROWS=1 in the environment skips
the columnar fast path) holds a Python object per row, so it runs on the first --row-path-rows rows (a prefix
file written beside), where the fast path runs too and the two outputs are compared byte for byte. Prints one
table; a figure of the machine it ran on, not a test.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS_ENV = "MMREC_PREPARE_ROWS"  # mmrec_cli.data.columnar.ROWS_ENV, not imported: the bench needs no mmrec import


def write_csv(path: Path, n: int, seed: int = 0) -> None:
    """A synthetic interactions CSV of `n` rows (see the module docstring), written in blocks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    num_users, num_items = max(1, n // 10), max(1, n // 20)
    activity = rng.lognormal(0.0, 1.0, num_users)
    user_cdf = np.cumsum(activity / activity.sum())
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.9
    item_cdf = np.cumsum(popularity / popularity.sum())
    item_label = rng.permutation(num_items)
    user_names = pa.array([f"A{h:013X}" for h in rng.integers(0, 16**13, num_users)])
    item_names = pa.array([f"{k:010d}" for k in range(num_items)])
    block = 1_000_000
    schema = pa.schema([("user_id", pa.string()), ("item_id", pa.string()), ("timestamp", pa.int64())])
    with open(path, "wb") as f:
        f.write(b"user_id,item_id,timestamp\n")
        writer = pacsv.CSVWriter(f, schema, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
        for start in range(0, n, block):
            m = min(block, n - start)
            users = np.minimum(np.searchsorted(user_cdf, rng.random(m)), num_users - 1)
            items = item_label[np.minimum(np.searchsorted(item_cdf, rng.random(m)), num_items - 1)]
            times = rng.integers(1_325_376_000, 1_704_067_200, m)
            writer.write_table(pa.table({"user_id": user_names.take(users), "item_id": item_names.take(items), "timestamp": times}))
        writer.close()


def gzip_copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as f, gzip.open(dst, "wb", compresslevel=6) as g:
        shutil.copyfileobj(f, g, 16 << 20)


def head(src: Path, dst: Path, rows: int) -> int:
    """The header and the first `rows` rows of `src` into `dst`; returns the rows written."""
    written = 0
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.readline())
        for line in f:
            if written == rows:
                break
            g.write(line)
            written += 1
    return written


def prepare(source: Path, out: Path, rows_path: bool) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, stderr) of `mmrec prepare` in a fresh process."""
    env = dict(os.environ)
    env.pop(ROWS_ENV, None)
    if rows_path:
        env[ROWS_ENV] = "1"
    cmd = [sys.executable, "-m", "mmrec_cli", "prepare", str(source), "-o", str(out), "--drop-short"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr.strip()}")
    return seconds, usage.ru_maxrss * 1024, stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--row-path-rows", type=int, default=1_000_000, help="rows of the prefix both paths read")
    ap.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the files (with --dir, they are always kept)")
    args = ap.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="prepare_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run_bench(folder, args.rows, args.row_path_rows)
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def run_bench(folder: Path, n: int, prefix_rows: int) -> None:
    csv_path, gz_path, prefix = folder / "interactions.csv", folder / "interactions.csv.gz", folder / "prefix.csv"
    start = time.perf_counter()
    if not csv_path.exists():
        write_csv(csv_path, n)
    if not gz_path.exists():
        gzip_copy(csv_path, gz_path)
    m = head(csv_path, prefix, min(prefix_rows, n))
    prefix_gz = folder / "prefix.csv.gz"
    gzip_copy(prefix, prefix_gz)
    print(f"# files written in {time.perf_counter() - start:.0f} s into {folder}", file=sys.stderr)
    runs = [(csv_path, n, False), (gz_path, n, False), (prefix, m, False), (prefix, m, True), (prefix_gz, m, False), (prefix_gz, m, True)]
    table = []
    outputs = {}
    for source, rows, rows_path in runs:
        out = folder / f"{source.name}.{'rows' if rows_path else 'fast'}.safetensors"
        seconds, rss, stderr = prepare(source, out, rows_path)
        outputs[(source, rows_path)] = out
        wrote = next((line for line in stderr.splitlines() if line.startswith("wrote ")), "")
        table.append((source.name, f"{source.stat().st_size / 2**20:,.0f} MiB", "row" if rows_path else "fast", rows, seconds, rss, wrote.split(": ", 1)[-1]))
    same = {name: _same_bytes(outputs[(p, False)], outputs[(p, True)]) for name, p in (("csv", prefix), ("gz", prefix_gz))}
    print(f"{'input':<22} {'size':>9} {'path':<5} {'rows':>11} {'seconds':>8} {'rows/s':>11} {'peak RSS':>9}  dataset")
    for name, size, path, rows, seconds, rss, wrote in table:
        print(f"{name:<22} {size:>9} {path:<5} {rows:>11,} {seconds:>8.1f} {rows / seconds:>11,.0f} {rss / 2**30:>7.2f} GB  {wrote}")
    print(f"same bytes, fast vs row path on the {m:,}-row prefix: csv {same['csv']}, gz {same['gz']}")


def _same_bytes(a: Path, b: Path) -> str:
    """'yes' when two datasets are identical, but for the output path recorded in their metadata."""
    import json
    import struct

    def content(p: Path):
        data = p.read_bytes()
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + size])
        meta = json.loads(header["__metadata__"]["mmrec"])
        meta["command"]["params"].pop("output")
        header["__metadata__"] = meta
        return header, data[8 + size :]

    return "yes" if content(a) == content(b) else "NO"


if __name__ == "__main__":
    main()
