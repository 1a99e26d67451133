"""Property-based tests (hypothesis) of the parsers and data builders: JSON lines, interaction and item
records, --set and the layered config, prepare's k-core and splits, and the training batches.

Small example counts and no deadline, so the file runs in seconds; explicit @example cases pin the
inputs that once escaped as non-MmrecError exceptions (deep nesting, huge numbers, bare CR in CSV).
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmrec_cli import config as C
from mmrec_cli.data import batches as B
from mmrec_cli.data import dataset as D
from mmrec_cli.data import prepare as P
from mmrec_cli.data import records as R
from mmrec_cli.errors import MmrecError
from mmrec_cli.io.jsonl import jsonl_writer, read_jsonl

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def file_with(data: bytes, name: str = "f.jsonl"):
    """A temporary file holding `data` (hypothesis reruns a test many times: no function-scoped tmp_path)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        yield str(path)


def lines_of(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def assert_names_a_line(err: MmrecError, path: str, data: bytes) -> int:
    """The message is `path:N: ...` with N a line of the file; returns N."""
    m = re.match(re.escape(path) + r":(\d+): ", str(err))
    assert m, str(err)
    n = int(m.group(1))
    assert 1 <= n <= len(lines_of(data))
    return n


# ---- JSON lines -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
records = st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=8)


@FAST
@given(records)
def test_jsonl_round_trip(recs):
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "r.jsonl")
        with jsonl_writer(path) as write:
            for rec in recs:
                write(rec)
        assert list(read_jsonl(path)) == list(enumerate(recs, start=1))


def _line_is_ok(raw: bytes, first: bool) -> bool:
    """An independent oracle: blank, or one JSON object."""
    try:
        text = raw.decode("utf-8-sig" if first else "utf-8")
        return not text.strip() or isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


@FAST
@given(st.binary(max_size=200) | st.lists(st.sampled_from([b"{}", b'{"a": 1}', b"[", b"\xff", b"\n", b" ", b"1", b'"x"', b"\xef\xbb\xbf"]), max_size=10).map(b"".join))
@example(b'{"a": 1}\n' + b"[" * 100_000)  # nesting deeper than the JSON parser's recursion limit
@example(b'{"a": 1}\n{"n": ' + b"9" * 5000 + b"}")  # an integer longer than Python's 4300-digit limit
@example(b"\xef\xbb\xbf{}\n\xef\xbb\xbf{}")  # a BOM is accepted on line 1 only
def test_any_bytes_parse_or_fail_on_the_right_line(data):
    with file_with(data) as path:
        got = []
        try:
            for lineno, obj in read_jsonl(path):
                got.append(lineno)
                assert isinstance(obj, dict)
        except MmrecError as err:
            n = assert_names_a_line(err, path, data)
            assert not _line_is_ok(lines_of(data)[n - 1], n == 1)
            assert all(_line_is_ok(raw, i == 0) for i, raw in enumerate(lines_of(data)[: n - 1]))
            return
        assert all(_line_is_ok(raw, i == 0) for i, raw in enumerate(lines_of(data)))
        blank = [raw.decode("utf-8-sig" if i == 1 else "utf-8").strip() == "" for i, raw in enumerate(lines_of(data), start=1)]
        assert got == [i for i, b in enumerate(blank, start=1) if not b]


# ---- interaction and item records ---------------------------------------------------------------

# ids as a user would have them: no surrounding blanks (CSV values are stripped) and no line breaks
# (records are one per line)
ids = st.text(st.characters(blacklist_categories=("Cs", "Zl", "Zp", "Cc")), min_size=1, max_size=6).filter(lambda s: s == s.strip() and s)
times = st.none() | st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(10**15), 10**15)
interactions = st.lists(st.tuples(ids, ids, times), min_size=1, max_size=12)


def _write_delimited(rows, delim: str) -> bytes:
    """A timestamp column unless no row has a time (an empty cell in a timed file is an error)."""
    timed = any(t is not None for _, _, t in rows)
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\n")
    w.writerow(["user_id", "item_id", "timestamp"] if timed else ["user_id", "item_id"])
    for u, i, t in rows:
        w.writerow([u, i, "" if t is None else repr(float(t))] if timed else [u, i])
    return buf.getvalue().encode("utf-8")


def _write_jsonl(rows) -> bytes:
    return "".join(json.dumps({"user_id": u, "item_id": i, **({} if t is None else {"timestamp": t})}) + "\n" for u, i, t in rows).encode()


@FAST
@given(interactions, st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_interactions_round_trip(rows, suffix):
    data = _write_jsonl(rows) if suffix == ".jsonl" else _write_delimited(rows, "," if suffix == ".csv" else "\t")
    with file_with(data, "i" + suffix) as path:
        if any(t is None for _, _, t in rows) and any(t is not None for _, _, t in rows):
            with pytest.raises(MmrecError, match="missing timestamp"):  # never a silent reorder
                R.read_interactions(path)
            return
        got = R.read_interactions(path)
    assert [(r.user, r.item, r.time) for r in got] == [(u, i, None if t is None else float(t)) for u, i, t in rows]
    assert [r.line for r in got] == list(range(2 if suffix != ".jsonl" else 1, len(rows) + (2 if suffix != ".jsonl" else 1)))


fragments = st.sampled_from([b"user_id,item_id,timestamp\n", b"user_id\titem_id\n", b"u,i,1\n", b"u\ti\n", b'"u,i",x,2\n', b"u,i,nan\n", b",,\n", b"a\rb,c\n", b"\xff", b"\n", b'{"user_id": "u", "item_id": "i"}\n', b'{"timestamp": 1e999}', b"\x00"])
any_file = st.binary(max_size=120) | st.lists(fragments, max_size=8).map(b"".join)


@FAST
@given(any_file, st.sampled_from([".csv", ".tsv", ".jsonl"]))
@example(b"user_id,item_id\nu\rv,i\n", ".csv")  # a bare CR (old Mac line ends) inside a field
@example(b"user_id,item_id\nu," + b"x" * 200_000 + b"\n", ".csv")  # a field over the csv module's size limit
@example(b'{"user_id": "u", "item_id": "i", "timestamp": 1' + b"0" * 400 + b"}\n", ".jsonl")  # too large for a float
@example(b'{"user_id": "u", "item_id": "i", "timestamp": "1e999"}\n', ".jsonl")
def test_interactions_any_bytes_parse_or_name_file_and_line(data, suffix):
    with file_with(data, "i" + suffix) as path:
        try:
            rows = R.read_interactions(path)
        except MmrecError as err:
            if str(err) != f"{path}: no interactions found; the file is empty":
                assert_names_a_line(err, path, data)
            assert err.code == 3
            return
    assert rows and all(r.user and r.item and (r.time is None or np.isfinite(r.time)) for r in rows)


item_records = st.lists(
    st.fixed_dictionaries({"item_id": ids}, optional={"text": st.text(max_size=10) | st.lists(st.text(max_size=6), max_size=3), "images": st.text(max_size=6) | st.lists(st.text(max_size=6), max_size=3)}),
    min_size=1, max_size=8, unique_by=lambda r: r["item_id"],
)


@FAST
@given(item_records)
def test_items_round_trip(recs):
    with file_with(_write_jsonl_items(recs), "items.jsonl") as path:
        got = R.read_items(path)
    assert list(got) == [r["item_id"] for r in recs]
    for r in recs:
        text = r.get("text", "")
        text = [text] if isinstance(text, str) else text
        images = r.get("images", [])
        assert got[r["item_id"]].text == [t for t in text if t.strip()]
        assert got[r["item_id"]].images == ([images] if isinstance(images, str) else images)


def _write_jsonl_items(recs) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in recs).encode()


@FAST
@given(st.lists(st.dictionaries(st.sampled_from(["item_id", "text", "images", "image"]), json_values, max_size=4), max_size=5).map(_write_jsonl_items) | any_file)
def test_items_any_input_parses_or_names_file_and_line(data):
    with file_with(data, "items.jsonl") as path:
        try:
            R.read_items(path)
        except MmrecError as err:
            if str(err) != f"{path}: no items found; the file is empty":
                assert_names_a_line(err, path, data)


# ---- --set and the layered config -------------------------------------------------------------------


@dataclass
class Train:
    lr: float = 0.1
    epochs: int = 3
    metric: Literal["ndcg@10", "recall@10"] = "ndcg@10"


@dataclass
class Cfg:
    name: str = "a"
    flag: bool = False
    ks: tuple[int, ...] = (5, 10)
    depth: int | None = None
    train: Train = field(default_factory=Train)


keys = st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), min_size=1, max_size=3).map(".".join)


@FAST
@given(keys, json_values)
def test_set_parses_key_equals_json(key, value):
    assert C._parse_set(f"{key}={json.dumps(value)}") == (key, value)


@FAST
@given(st.text(max_size=30))
@example("train.epochs=" + "9" * 5000)  # an integer longer than Python's 4300-digit limit
@example("train.lr=1" + "0" * 400)  # an integer too large for a float
@example("train.epochs=1e999")
@example("name=" + "[" * 100_000)
@example("train=3")
@example("train.lr.x=1")
@example("=1")
def test_any_set_resolves_or_raises_mmrec_error(item):
    try:
        cfg = C.resolve(Cfg, None, [item])
    except MmrecError as err:
        assert err.code == 3
        return
    assert isinstance(cfg, Cfg)


@FAST
@given(
    st.one_of(st.none(), st.integers(0, 99)),  # config file
    st.one_of(st.none(), st.integers(0, 99)),  # --set
    st.one_of(st.none(), st.integers(0, 99)),  # flag
    st.floats(0.001, 1.0),
)
def test_layers_later_wins(file_value, set_value, flag_value, lr):
    with tempfile.TemporaryDirectory() as d:
        conf = None
        if file_value is not None:
            conf = str(Path(d) / "c.json")
            Path(conf).write_text(json.dumps({"train": {"epochs": file_value, "lr": lr}}))
        sets = [] if set_value is None else [f"train.epochs={set_value}"]
        cfg = C.resolve(Cfg, conf, sets, {"train.epochs": flag_value})
    want = next((v for v in (flag_value, set_value, file_value) if v is not None), Train().epochs)
    assert cfg.train.epochs == want and cfg.train.lr == (lr if file_value is not None else Train().lr)


@FAST
@given(st.binary(max_size=80) | st.sampled_from([b"[" * 100_000, b'{"a": ' + b"1" * 5000 + b"}", b"a = " + b"1" * 5000, b"[train]\nlr = 1e999"]), st.sampled_from([".json", ".toml"]))
def test_any_config_file_resolves_or_raises_mmrec_error(data, suffix):
    with file_with(data, "c" + suffix) as path:
        try:
            C.resolve(Cfg, path)
        except MmrecError as err:
            assert str(err).startswith((path, "config: ")) and err.code == 3


# ---- prepare: order, k-core, splits ------------------------------------------------------------------


def _inters(rows) -> list[R.Interaction]:
    return [R.Interaction(u, i, t, n) for n, (u, i, t) in enumerate(rows, start=1)]


small_rows = st.lists(st.tuples(st.sampled_from("uvwxyz"), st.sampled_from("abcdefgh"), st.none() | st.integers(0, 5)), min_size=1, max_size=40)


def _oracle_order(rows) -> dict[str, list[str]]:
    """Each user's items: stable by time (all rows timed, or none); users by first occurrence."""
    out: dict[str, list] = {}
    for n, (u, i, t) in enumerate(rows):
        out.setdefault(u, []).append((t, n, i))
    return {u: [i for _, _, i in sorted(v, key=lambda x: (x[0] if x[0] is not None else -1, x[1]))] for u, v in out.items()}


def _oracle_kcore(by_user: dict[str, list[str]], k: int, k_user: int) -> dict[str, list[str]]:
    """The k-core is unique: remove one offending user or item at a time until none is left."""
    by_user = {u: list(s) for u, s in by_user.items()}
    while True:
        counts = Counter(i for s in by_user.values() for i in s)
        bad_user = next((u for u, s in by_user.items() if len(s) < k_user), None)
        if bad_user is not None:
            del by_user[bad_user]
            continue
        bad_item = next((i for i, c in counts.items() if c < k), None)
        if bad_item is None:
            return by_user
        by_user = {u: [i for i in s if i != bad_item] for u, s in by_user.items()}


def _sequences(ds: D.Dataset) -> dict[str, list[str]]:
    return {ds.user_ids[u]: [ds.item_ids[i] for i in ds.sequence(u)] for u in range(ds.num_users)}


KCORE2_SHORT = [("u", "a", None), ("u", "b", None), ("u", "c", None), ("v", "a", None), ("v", "b", None), ("w", "c", None), ("w", "d", None), ("x", "d", None), ("x", "e", None), ("x", "e", None)]


@FAST
@given(small_rows, st.integers(0, 5), st.booleans())
@example(KCORE2_SHORT, 2, True)  # w is in the 2-core but too short: dropping it must recount c and d
def test_build_orders_by_time_and_keeps_exactly_the_kcore(rows, k, drop_short):
    if len({t is None for _, _, t in rows}) == 2:  # some rows timed, some not: refused, never reordered
        with pytest.raises(MmrecError, match="missing timestamp"):
            P.build(_inters(rows), None, where="i.csv", kcore=k, drop_short=drop_short)
        return
    want = _oracle_order(rows)
    if k:  # with --drop-short, users under 3 leave inside the k-core loop and their items are recounted
        want = _oracle_kcore(want, k, max(k, 3) if drop_short else k)
    if drop_short:
        want = {u: s for u, s in want.items() if len(s) >= 3}
    try:
        ds = P.build(_inters(rows), None, where="i.csv", kcore=k, drop_short=drop_short)
    except MmrecError as err:
        assert err.code == 3 and str(err).startswith("i.csv: ")
        assert not want or any(len(s) < 3 for s in want.values())
        return
    got = _sequences(ds)
    assert got == want and list(got) == list(want)
    counts = Counter(i for s in got.values() for i in s)
    if k:
        assert min(counts.values()) >= k and min(len(s) for s in got.values()) >= k
    assert ds.item_ids == list(dict.fromkeys(i for s in got.values() for i in s))


user_seqs = st.lists(st.lists(st.integers(0, 29), min_size=3, max_size=25, unique=True), min_size=1, max_size=10)


@FAST
@given(user_seqs, st.sampled_from(["loo", "ratio"]), st.integers(0, 2**31))
def test_split_partitions_each_users_sequence_in_order(seqs, protocol, seed):
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(30)], [f"u{u}" for u in range(len(seqs))], protocol, seed)
    for u, seq in enumerate(seqs):
        got, lab = ds.sequence(u).tolist(), ds.labels(u)
        assert got == seq  # labels only: the chronological sequence is untouched
        parts = [[x for x, label in zip(got, lab) if label == s] for s in (D.TRAIN, D.VALID, D.TEST)]
        assert sorted(sum(parts, [])) == sorted(seq) and all(parts)
        if protocol == "loo":
            assert parts == [seq[:-2], [seq[-2]], [seq[-1]]]
        else:
            n = len(seq)
            assert (len(parts[1]), len(parts[2])) == (max(1, round(n * 0.1)), max(1, round(n * 0.1)))
    again = D.from_sequences(seqs, [f"i{i}" for i in range(30)], [f"u{u}" for u in range(len(seqs))], protocol, seed)
    assert np.array_equal(again.split, ds.split)


# ---- training batches -------------------------------------------------------------------------------


@FAST
@given(user_seqs, st.sampled_from(["loo", "ratio"]), st.integers(1, 12), st.integers(1, 9), st.integers(0, 99))
def test_each_train_item_is_a_target_exactly_once_per_epoch(seqs, protocol, max_len, batch_size, epoch):
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(30)], [f"u{u}" for u in range(len(seqs))], protocol, 7)
    seen = Counter()
    for batch in B.train_batches(ds, max_len, batch_size, seed=3, epoch=epoch):
        _check_rows(ds, batch, max_len, seen)
    want = Counter()
    for u in range(ds.num_users):
        train = ds.sequence(u)[ds.labels(u) == D.TRAIN].tolist()
        want.update((u, x) for x in train[1:])  # every train item but the first has something before it
    assert seen == want


def _check_rows(ds: D.Dataset, batch: dict, max_len: int, seen: Counter) -> None:
    items, targets = batch["items"].numpy(), batch["targets"].numpy()
    assert items.shape[1] <= max_len and np.array_equal(batch["lengths"].numpy(), (items > 0).sum(1))
    assert np.array_equal(targets == B.IGNORE, items == 0)  # a target at every real position, none on padding
    for b, u in enumerate(batch["user"].tolist()):
        train = ds.sequence(u)[ds.labels(u) == D.TRAIN].tolist()
        n = int(batch["lengths"][b])
        row = (items[b, :n] - 1).tolist()
        for p in range(n):
            pos = train.index(int(targets[b, p]))  # items are unique within a sequence
            assert row[: p + 1] == train[pos - p - 1 : pos]  # the model sees the true prefix before the target
            seen[(u, int(targets[b, p]))] += 1


@FAST
@given(user_seqs, st.sampled_from(["valid", "test"]), st.integers(1, 12))
def test_eval_rows_hold_everything_before_the_split(seqs, split, max_len):
    ds = D.from_sequences(seqs, [f"i{i}" for i in range(30)], [f"u{u}" for u in range(len(seqs))])
    inputs, targets, users = B.eval_rows(ds, split)
    assert users == list(range(len(seqs)))
    for h, t, u in zip(inputs, targets, users):
        cut = -2 if split == "valid" else -1
        assert h.tolist() == seqs[u][:cut] and t.tolist() == [seqs[u][cut]]
    batch = B.collate_eval(inputs, users, max_len)
    for b, h in enumerate(inputs):
        n = int(batch["lengths"][b])
        assert (batch["items"][b, :n] - 1).tolist() == h[-max_len:].tolist()


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
