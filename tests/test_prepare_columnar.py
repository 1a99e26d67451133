"""The columnar fast path of `mmrec prepare` writes the same bytes as the row path, and leaves to it what it cannot read."""

import bz2
import gzip
import json

import numpy as np
import pytest
from _cli import error_line, run

from mmrec_cli.data import columnar, formats


def rows(seed=0, users=12, items=9, n=120, ties=True):
    """Seeded (user, item, timestamp) rows: ties in time, exact repeats, users of every length."""
    rng = np.random.default_rng(seed)
    out = [(f"u{int(rng.integers(users))}", f"i{int(rng.zipf(1.6)) % items}", int(rng.integers(1, 40 if ties else 10**6))) for _ in range(n)]
    return out + out[:3]  # exact repeats


def delimited(records, sep=",", header=("user_id", "item_id", "timestamp"), end="\n"):
    lines = ([sep.join(header)] if header else []) + [sep.join(str(v) for v in r) for r in records]
    return end.join(lines) + end


def both(tmp_path, monkeypatch, name, content, *args, fast=True):
    """Prepare `name` (text, or bytes as written) by each path to the same output; returns (fast result, rows
    result, fast bytes, rows bytes). With `fast`, the fast path must have read it (formats.load is not called)."""
    src = tmp_path / name
    src.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    out = tmp_path / "ds.safetensors"
    results, data = [], []
    for rows_path in (False, True):
        with monkeypatch.context() as m:
            if rows_path:
                m.setenv(columnar.ROWS_ENV, "1")
            elif fast:
                m.setattr(formats, "load", lambda *a, **k: pytest.fail("the fast path fell back"))
            results.append(run("prepare", src, "-o", out, *args))
        data.append(out.read_bytes() if out.exists() else None)
        if out.exists():
            out.unlink()
    return results[0], results[1], data[0], data[1]


def same(tmp_path, monkeypatch, name, content, *args, fast=True):
    r_fast, r_rows, fast_bytes, row_bytes = both(tmp_path, monkeypatch, name, content, *args, fast=fast)
    assert r_rows.exit_code == 0, r_rows.output
    assert r_fast.exit_code == 0, r_fast.output
    assert r_fast.stderr == r_rows.stderr
    assert fast_bytes == row_bytes
    return r_fast


TIMED = rows(users=30)
UNTIMED = [(u, i) for u, i, _ in rows(1)]


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--drop-short",),
        ("--kcore", "2", "--drop-short"),
        ("--kcore", "3"),
        ("--max-history", "4", "--drop-short"),
        ("--split", "ratio", "--seed", "3", "--drop-short"),
        ("--split", "time", "--drop-short"),
        ("--dedup", "--drop-short"),
    ],
)
def test_timed_csv_is_byte_identical(tmp_path, monkeypatch, args):
    r_fast, r_rows, fast_bytes, row_bytes = both(tmp_path, monkeypatch, "i.csv", delimited(TIMED), *args, fast=False)
    assert r_rows.exit_code == r_fast.exit_code and r_fast.stderr == r_rows.stderr
    assert fast_bytes == row_bytes
    if r_rows.exit_code == 0:
        same(tmp_path, monkeypatch, "i.csv", delimited(TIMED), *args)


def test_a_short_user_is_refused_with_the_same_line(tmp_path, monkeypatch):
    r_fast, r_rows, _, _ = both(tmp_path, monkeypatch, "i.csv", delimited(TIMED))
    assert r_fast.exit_code == r_rows.exit_code == 3
    assert error_line(r_fast) == error_line(r_rows) and "interaction(s); leave-one-out needs at least 3" in error_line(r_fast)


@pytest.mark.parametrize("args", [("--drop-short",), ("--kcore", "2", "--drop-short", "--split", "ratio")])
def test_untimed_csv_keeps_the_file_order_and_counts_repeats(tmp_path, monkeypatch, args):
    r = same(tmp_path, monkeypatch, "i.csv", delimited(UNTIMED, header=("user_id", "item_id")), *args)
    assert "repeats:" in r.stderr


def test_ties_are_broken_by_the_file_order(tmp_path, monkeypatch):
    text = "user_id,item_id,timestamp\nu,a,3\nu,b,1\nu,c,1\nu,d,5\nv,a,1\nv,b,2\nv,c,3\n"
    same(tmp_path, monkeypatch, "i.csv", text)
    from mmrec_cli.data import dataset as D

    run("prepare", tmp_path / "i.csv", "-o", tmp_path / "o.safetensors")
    ds = D.load(str(tmp_path / "o.safetensors"))
    assert [ds.item_ids[i] for i in ds.sequence(0)] == ["b", "c", "a", "d"] and ds.item_ids == ["b", "c", "a", "d"]


def test_headerless_tab_separated_by_position(tmp_path, monkeypatch):
    text = delimited([(t, "x", i, u) for u, i, t in TIMED], sep="\t", header=None)
    same(tmp_path, monkeypatch, "i.tsv", text, "--no-header", "--user-col", "3", "--item-col", "2", "--time-col", "0", "--drop-short")
    same(tmp_path, monkeypatch, "i.txt", text, "--no-header", "--user-col", "3", "--item-col", "2", "--drop-short")


def test_other_delimiters_and_column_names(tmp_path, monkeypatch):
    text = delimited([(i, "5", u, t) for u, i, t in TIMED], sep=";", header=("Artikel", "Note", "Kunde", "Zeit"))
    same(tmp_path, monkeypatch, "export.csv", text, "--sep", ";", "--user-col", "Kunde", "--item-col", "Artikel", "--time-col", "Zeit", "--drop-short")


@pytest.mark.parametrize("suffix, pack", [(".csv.gz", gzip.compress), (".csv.bz2", bz2.compress)])
def test_compressed_files(tmp_path, monkeypatch, suffix, pack):
    same(tmp_path, monkeypatch, "i" + suffix, pack(delimited(TIMED).encode()), "--drop-short", "--kcore", "2")


def test_ids_stay_strings_with_leading_zeros_unicode_and_padding(tmp_path, monkeypatch):
    names = {"u0": "007", "u1": "7", "u2": "07", "u3": " 7 ", "u4": "用户", "u5": "\u00a0é", "u6": "é", "u7": "🙂"}
    recs = [(names.get(u, u), {"i1": "0001", "i2": "1", "i3": "\u3000ü "}.get(i, i), t) for u, i, t in TIMED]
    r = same(tmp_path, monkeypatch, "i.csv", delimited(recs), "--drop-short")
    assert r.exit_code == 0


def test_a_quoted_header_is_read_by_the_row_reader_and_skipped_by_pyarrow(tmp_path, monkeypatch):
    text = delimited(TIMED).replace("user_id,item_id,timestamp", '"user_id","item_id","timestamp"')
    same(tmp_path, monkeypatch, "i.csv", text, "--drop-short")


def test_bom_crlf_and_blank_lines(tmp_path, monkeypatch):
    text = "\ufeff" + delimited(TIMED, end="\r\n").replace("\r\n", "\r\n\r\n", 3)
    same(tmp_path, monkeypatch, "i.csv", text, "--drop-short")
    same(tmp_path, monkeypatch, "h.csv", "\ufeff" + delimited(TIMED, header=None, end="\r\n"), "--no-header", "--time-col", "2", "--drop-short")


@pytest.mark.parametrize("scale, args", [(1000, ()), (1, ("--time-unit", "ms")), (1, ("--time-unit", "s")), (1, ())])
def test_milliseconds_and_mixed_units(tmp_path, monkeypatch, scale, args):
    recs = [(u, i, 1_400_000_000_000 + t * scale * 997 if k % 3 else 1_400_000_000 + t) for k, (u, i, t) in enumerate(TIMED)]
    same(tmp_path, monkeypatch, "i.csv", delimited(recs), "--drop-short", *args)
    fractions = [(u, i, f"{1.4e9 + t / 7:.6f}") for u, i, t in TIMED]
    same(tmp_path, monkeypatch, "f.csv", delimited(fractions), "--drop-short", *args)


def test_milliseconds_that_meet_as_seconds_tie_in_the_file_order(tmp_path, monkeypatch):
    """1084015343582.3849 and ...3848 ms are one number of seconds: tied, the file's order decides."""
    text = "user_id,item_id,timestamp\nu,a,1084015343582.3849\nu,b,1084015343582.3848\nu,c,1084015343583\n"
    same(tmp_path, monkeypatch, "i.csv", text)
    from mmrec_cli.data import dataset as D

    run("prepare", tmp_path / "i.csv", "-o", tmp_path / "o.safetensors")
    assert D.load(str(tmp_path / "o.safetensors")).item_ids == ["a", "b", "c"]


def test_iso_dates_and_padded_numbers_are_read_value_by_value(tmp_path, monkeypatch):
    recs = [(u, i, f"2014-03-{t % 28 + 1:02d}T12:{t % 60:02d}:00" + ("Z" if t % 2 else "") if t % 3 else f" {t} ") for u, i, t in TIMED]
    r = same(tmp_path, monkeypatch, "i.csv", delimited(recs), "--drop-short", "--split", "time")
    assert "ISO-8601" in r.stderr


def test_min_rating_dedup_recbole_and_movielens(tmp_path, monkeypatch):
    rated = [(u, i, t, (t * 7) % 5 + 1) for u, i, t in TIMED]
    csv_text = delimited(rated, header=("user_id", "item_id", "timestamp", "rating"))
    same(tmp_path, monkeypatch, "r.csv", csv_text, "--min-rating", "3", "--dedup", "--drop-short")
    inter = delimited([(u, i, r, t) for u, i, t, r in rated], sep="\t", header=("user_id:token", "item_id:token", "rating:float", "timestamp:float"))
    same(tmp_path, monkeypatch, "d.inter", inter, "--min-rating", "2.5", "--drop-short")
    ml = delimited([(u[1:], i[1:], r, t) for u, i, t, r in rated], header=("userId", "movieId", "rating", "timestamp"))
    same(tmp_path, monkeypatch, "ratings.csv", ml, "--min-rating", "4", "--drop-short", "--kcore", "2")
    same(tmp_path, monkeypatch, "u.data", delimited([(u, i, r, t) for u, i, t, r in rated], sep="\t", header=None), "--drop-short")


def test_items_files_set_the_item_order_and_text(tmp_path, monkeypatch):
    ids = sorted({i for _, i, _ in TIMED}, reverse=True)
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"item_id": i, "text": "" if i == "i2" else f"item {i}"}) + "\n" for i in ids))
    (tmp_path / "titles.tsv").write_text("".join(f"{i}\tTitle {i}\n" for i in ids[2:]) + "zz\tother\n")
    text = delimited(TIMED)
    same(tmp_path, monkeypatch, "i.csv", text, "--items", tmp_path / "items.jsonl", "--drop-short", "--items-out", tmp_path / "out.jsonl")
    r = same(tmp_path, monkeypatch, "i.csv", text, "--items", tmp_path / "items.jsonl", "--drop-items-without-text", "--drop-short")
    assert "drop-items-without-text: dropped 1 item without text" in r.stderr
    r = same(tmp_path, monkeypatch, "i.csv", text, "--items", tmp_path / "titles.tsv", "--drop-items-without-text", "--drop-short", "--kcore", "2")
    assert "items: " in r.stderr


def test_dropping_rows_reorders_users_as_the_row_path_does(tmp_path, monkeypatch):
    """A user whose first row is dropped (--min-rating, --drop-items-without-text) comes after the users that
    then occur before it."""
    text = "user_id,item_id,timestamp,rating\na,x,1,1\nb,y,2,5\nb,z,3,5\nb,w,4,5\na,y,5,5\na,z,6,5\na,w,7,5\n"
    same(tmp_path, monkeypatch, "r.csv", text, "--min-rating", "3")
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"item_id": i, "text": "" if i == "x" else i}) + "\n" for i in "xyzw"))
    same(tmp_path, monkeypatch, "r.csv", text, "--items", tmp_path / "items.jsonl", "--drop-items-without-text")


@pytest.mark.parametrize(
    "content",
    [
        'user_id,item_id,timestamp\nu,"a",1\nu,b,2\nu,c,3\n',  # quoting: the csv module's rules
        "user_id,item_id,timestamp\nu,a,1\n   \nu,b,2\nu,c,3\n",  # a line of spaces: skipped
        "\nuser_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c,3\n",  # the header after a blank line
        "user_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c,3\r",  # a lone carriage return
        "user_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c,3\nu,d,\n",  # a missing timestamp
        "user_id,item_id\nu,a\nu,b\nu,c\n\t\n",  # white space only
    ],
)
def test_what_the_fast_path_cannot_read_goes_to_the_row_path(tmp_path, monkeypatch, content):
    r_fast, r_rows, fast_bytes, row_bytes = both(tmp_path, monkeypatch, "i.csv", content, fast=False)
    assert (r_fast.exit_code, r_fast.stderr, fast_bytes) == (r_rows.exit_code, r_rows.stderr, row_bytes)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("bad.csv", "user_id,item_id\nu,a\nu,a,b\n", "bad.csv:3: expected 2 fields, got 3"),
        ("bad.csv", "user_id,item_id,timestamp\nu,a,yesterday\n", "bad.csv:2: timestamp 'yesterday' is not a number"),
        ("bad.csv", "user_id,item_id,timestamp\nu,a,1\nu,,2\n", "bad.csv:3: missing or invalid 'item_id'"),
        ("bad.csv", "user_id,item_id,timestamp\nu,a,1\nu,b,nan\n", "bad.csv:3: timestamp 'nan' is not finite"),
        ("bad.csv", "user,item\nu,a\n", "bad.csv:1: header lacks 'user_id'"),
        ("latin.csv", "user_id,item_id\nu,a\nu,caf\xe9\n", "latin.csv:3: not valid UTF-8"),
        ("long.csv", "user_id,item_id,note\nu,a,x\nu,b," + "y" * 140_000 + "\n", "long.csv:3: unreadable record (field larger than field limit (131072))"),
    ],
)
def test_bad_rows_give_the_row_paths_error_line(tmp_path, monkeypatch, name, content, expected):
    r_fast, r_rows, _, _ = both(tmp_path, monkeypatch, name, content.encode("latin-1"), fast=False)
    assert r_fast.exit_code == r_rows.exit_code == 3
    assert error_line(r_fast) == error_line(r_rows) and expected in error_line(r_fast)


def test_a_truncated_gzip_gives_the_row_paths_error(tmp_path, monkeypatch):
    data = gzip.compress(delimited(rows(2, n=3000, ties=False)).encode())
    r_fast, r_rows, _, _ = both(tmp_path, monkeypatch, "cut.csv.gz", data[: len(data) // 2], fast=False)
    assert r_fast.exit_code == r_rows.exit_code == 3
    assert error_line(r_fast) == error_line(r_rows) and "the file is truncated" in error_line(r_fast)


def test_the_sorts_match_numpys_stable_sorts():
    rng = np.random.default_rng(4)
    for bound in (1, 2, 7, 1 << 20, 1 << 60):  # the last packs into no int64: numpy's argsort
        key = rng.integers(0, bound, 5000, dtype=np.int64)
        keys, order = columnar._sort(key, bound)
        assert np.array_equal(order, np.argsort(key, kind="stable")) and np.array_equal(keys, np.sort(key))
    user = rng.integers(0, 40, 5000)
    for times in (rng.integers(0, 30, 5000) * 1.5, rng.integers(-30, 30, 5000) * 1e9, rng.integers(0, 30, 5000) + 0.0):
        ordered = columnar._sorted(columnar._Rows(user, np.zeros(5000, int), times, times, np.arange(5000)), 40)
        assert np.array_equal(ordered.line, np.lexsort((times, user))) and np.array_equal(ordered.user, np.sort(user))
