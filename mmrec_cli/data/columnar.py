"""The fast path of `mmrec prepare` for large delimited interaction files: pyarrow parses, numpy builds.

`prepare` reads a CSV/TSV file (.gz/.bz2 too) of the `csv`, `recbole` or `movielens` formats into columns with
pyarrow.csv, and builds the dataset with array operations (dictionary-encoded ids, one sort by user and time, the
k-core by counting) into the same bytes as the row path (records.read_interactions -> formats.load ->
prepare.build), which stays the reference of every rule. It takes only what it reads exactly as the row reader
does: a one-byte delimiter; no quote character, NUL byte or lone carriage return anywhere in the file; valid UTF-8;
lines within the csv module's field size limit; the header (if any) on the first line; a value in every column
read. For anything else (another format, standard input, a parse error, a missing or unreadable value, an option
that ends in an error) it returns None, and the row path reads the file and words the error as `file:line: ...`.
The one error said here is the row path's last check, a user left with fewer than 3 interactions.

MMREC_PREPARE_ROWS=1 in the environment skips the fast path (bench/prepare_bench.py times the two side by side).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import io
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mmrec_cli.data import dataset as D
from mmrec_cli.data import formats, records
from mmrec_cli.data.prepare import untexted_note
from mmrec_cli.errors import MmrecError
from mmrec_cli.io.jsonl import compression, open_binary, read_lines

ROWS_ENV = "MMREC_PREPARE_ROWS"
FORMATS = ("csv", "recbole", "movielens")  # the formats read from delimited files
BLOCK = 4 << 20  # bytes pyarrow parses at a time
WHOLE = 2**51  # whole numbers below this sort as integers; below it, ms / 1000 keeps distinct values distinct


class Fallback(Exception):
    """The input needs the row path: a rule the fast path does not reproduce, or an error the row path words."""


@dataclass
class Settings:
    """The options of `prepare.build` that shape the dataset."""

    kcore: int = 0
    max_history: int = 0
    protocol: str = "loo"
    seed: int = 0
    drop_short: bool = False
    drop_items_without_text: bool = False


@dataclass
class _Rows:
    """Interactions as parallel arrays: user and item codes, seconds and the numbers to sort them by (None without
    timestamps), and each row's position in the file, which breaks ties in time."""

    user: np.ndarray
    item: np.ndarray
    time: np.ndarray | None
    basis: np.ndarray | None
    line: np.ndarray | None  # None once no step needs it

    def take(self, index: np.ndarray) -> _Rows:
        pick = lambda a: None if a is None else a[index]
        return _Rows(self.user[index], self.item[index], pick(self.time), pick(self.basis), pick(self.line))


@dataclass
class _Built:
    """A dataset's arrays before its split: sequence lengths, item indices end to end, ids, times (or None)."""

    lengths: np.ndarray
    items: np.ndarray
    item_ids: list[str]
    user_ids: list[str]
    times: np.ndarray | None


def prepare(source: str, opts: formats.Options, settings: Settings) -> tuple[formats.Loaded, D.Dataset] | None:
    """What `formats.load` and `prepare.build` make of `source` (the Loaded holds no interaction list), or None
    when the row path must read it. Raises only the short-user error of `dataset.check_lengths`."""
    if os.environ.get(ROWS_ENV) or source == "-" or opts.items == "-":
        return None
    import pyarrow as pa

    try:
        loaded, built = _build(source, opts, settings)
    except (Fallback, MmrecError, pa.ArrowException, OSError, EOFError, UnicodeDecodeError, zlib.error):
        return None
    D.check_length_counts(built.lengths, built.user_ids, source)
    protocol = settings.protocol
    ds = D.from_arrays(built.lengths, built.items, built.item_ids, built.user_ids, "loo" if protocol == "time" else protocol, settings.seed)
    if protocol == "time":
        ds.split, ds.protocol = D.time_labels_flat(built.times, built.lengths, D.time_cutoffs(built.times)), "time"
    return loaded, ds


def _build(source: str, opts: formats.Options, settings: Settings) -> tuple[formats.Loaded, _Built]:
    """formats.load and prepare.build on columns, in the same steps, making the same notes."""
    fmt, columns, notes = formats.plan(source, opts)
    if fmt not in FORMATS:
        raise Fallback
    rows, users, item_names = _load(source, columns, opts, settings, notes)
    items, items_kind = None, None
    if opts.items:
        interacted = lambda: _interacted(rows, item_names)
        items, items_kind = formats.read_item_file(opts.items, source, interacted, opts.item_text_fields, notes, formats.items_fate(opts))
        _check_known(rows.item, item_names, items)
    timed = rows.time is not None
    if settings.drop_items_without_text:
        rows, users = _drop_untexted(rows, users, item_names, items, notes)
    built = _assemble(rows, users, item_names, items, settings)
    return formats.Loaded(fmt, [], items, formats.mapping(source, fmt, columns, opts, timed, items_kind), notes), built


def _load(source: str, columns: records.Columns, opts: formats.Options, settings: Settings, notes: list[str]) -> tuple[_Rows, object, object]:
    """(rows, user ids, item ids): the rows as formats.load leaves them (--min-rating, duplicates counted or
    dropped), sorted by user and time; the ids as pyarrow strings, by code."""
    table = _read(source, columns)
    if not len(table["user"]) or ("time" not in table and (opts.dedup or settings.protocol == "time")):
        raise Fallback
    with ThreadPoolExecutor(2) as pool:  # pyarrow hashes without the GIL: the two columns at once
        (user, users), (item, item_names) = pool.map(_ids, (table.pop("user"), table.pop("item")))
    rows = _Rows(user, item, None, None, np.arange(len(user), dtype=np.int64))
    if "time" in table:
        rows.time, rows.basis, times = _times(table.pop("time"), opts.time_unit, source)
        if times.describe():
            notes.append(times.describe())
    if opts.min_rating is not None:
        rows, users = _min_rating(rows, users, _ratings(table.pop("rating"), source), opts.min_rating, notes)
    rows = _sorted(rows, len(users))
    return _duplicates(rows, len(item_names), opts.dedup, notes), users, item_names


def _assemble(rows: _Rows, users, item_names, items: dict | None, settings: Settings) -> _Built:
    """prepare.build from its k-core on: the filters, the user and item order, the arrays of the dataset."""
    rows.line = None
    if settings.protocol != "time":
        rows.time = None
    rows = _filter(rows, settings, len(item_names), len(users))
    starts, lengths = _groups(rows.user)
    item_index, item_ids = _item_order(rows.item, item_names, items)
    return _Built(lengths, item_index, item_ids, users.take(rows.user[starts]).to_pylist(), rows.time)


# ---- reading -----------------------------------------------------------------------------------------------


def _read(source: str, columns: records.Columns) -> dict:
    """{role: pyarrow column} of a delimited file, read as the row reader would read it (else Fallback): ids as
    strings; timestamps and ratings as float64 where pyarrow reads every value as a number (its parser and float()
    agree on each number it accepts, and the spaces it trims the row reader strips), else as strings."""
    import pyarrow as pa

    delim = records.delimiter(source, columns.sep)
    if delim is None or len(delim) != 1 or not delim.isascii() or delim in '"\0':
        raise Fallback
    lines = read_lines(source)
    first = next(lines, None)
    lines.close()
    if first is None or first[0] != 1:  # pyarrow would count the blank lines before it as rows to skip
        raise Fallback
    index, width = records.layout(source, 1, first[1], delim, columns)
    numeric = {index[role] for role in ("time", "rating") if role in index} - {index["user"], index["item"]}
    try:
        table = _parse(source, delim, columns.header, width, index, numeric)
    except pa.ArrowInvalid:  # a value that is no number (an ISO date); or a broken file, which fails again
        table = _parse(source, delim, columns.header, width, index, set())
    if any(table.column(j).null_count for j in range(table.num_columns)):  # the numbers pyarrow reads as missing
        raise Fallback
    return {role: table.column(f"f{j}") for role, j in index.items()}


def _parse(source: str, delim: str, header: bool, width: int, index: dict[str, int], numeric: set[int]):
    """The columns of `index` as a pyarrow Table (columns f0, f1, ...): strings, but float64 for `numeric`."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    names = [f"f{j}" for j in range(width)]
    used = sorted(set(index.values()))
    types = {names[j]: pa.float64() if j in numeric else pa.string() for j in used}
    read = pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0, block_size=BLOCK)
    parse = pacsv.ParseOptions(delimiter=delim, quote_char=False, double_quote=False, escape_char=False, ignore_empty_lines=True)
    convert = pacsv.ConvertOptions(include_columns=[names[j] for j in used], column_types=types, strings_can_be_null=False)
    with _Checked(source, header) as stream:
        table = pacsv.read_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        stream.finish()
    return table


class _Checked(io.RawIOBase):
    """The (decompressed) bytes of a file on their way to pyarrow, refusing (Fallback) every byte that the row
    reader reads otherwise than pyarrow.csv without quoting: a quote (the csv module's quoting) after the header
    line (which the row reader splits on its own, and pyarrow skips), a NUL, a carriage return that does not end a
    line (pyarrow ends a line there), a line over the csv module's field size limit, and invalid UTF-8 (in any
    column: the row reader decodes whole lines)."""

    def __init__(self, path: str, header: bool):
        super().__init__()
        self._header = header  # the header line is under way
        kind = compression(path)
        if kind == "gzip":  # pyarrow's zlib stream reads about a quarter faster than the gzip module
            import pyarrow as pa

            self._file = self._stream = pa.input_stream(path, compression="gzip")
        else:
            self._file = open_binary(path)
            self._stream = bz2.BZ2File(self._file, mode="rb") if kind == "bz2" else self._file
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._limit = csv.field_size_limit()
        self._line = 0  # bytes of the line under way
        self._cr = False  # the bytes so far end with a carriage return

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._check(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> None:
        """Refuse what the end of the file leaves open: a carriage return, a cut UTF-8 sequence."""
        if self._cr:
            raise Fallback
        self._utf8.decode(b"", final=True)

    def close(self) -> None:
        if self._stream is not self._file:
            self._stream.close()
        self._file.close()
        super().close()

    def _check(self, data: bytes) -> None:
        if not data:
            return
        body = data
        if self._header:
            end = data.find(b"\n")
            self._header = end < 0
            body = b"" if end < 0 else data[end + 1 :]
        if b'"' in body or b"\0" in data:
            raise Fallback
        if self._cr and data[:1] != b"\n":
            raise Fallback
        if b"\r" in data and data.count(b"\r") != data.count(b"\r\n") + data.endswith(b"\r"):
            raise Fallback
        self._cr = data.endswith(b"\r")
        if not data.isascii() or self._utf8.getstate()[0]:
            self._utf8.decode(data)  # UnicodeDecodeError: the row path names the line
        self._lines(data)

    def _lines(self, data: bytes) -> None:
        """Refuse a line longer than the field size limit: every run of limit + 1 bytes must hold a newline."""
        pos, room = 0, self._limit - self._line  # room: the bytes the line under way may still take
        while len(data) - pos > room:
            newline = data.rfind(b"\n", pos, pos + room + 1)
            if newline < 0:
                raise Fallback
            pos, room = newline + 1, self._limit
        self._line = self._limit - room + len(data) - pos


@lru_cache(maxsize=1)
def _padded() -> str:
    """An RE2 pattern matching a value that starts or ends with white space as str.strip() sees it (every
    str.isspace() character is below U+3001)."""
    space = "".join(f"\\x{{{c:x}}}" for c in range(0x3001) if chr(c).isspace())
    return f"^[{space}]|[{space}]$"


def _ids(column) -> tuple[np.ndarray, object]:
    """(codes, values) of an id column: codes in order of first occurrence, values stripped as the row reader
    strips them (values that differ only in white space become one). Fallback for an empty value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    codes, values = _encoded(column)
    if pc.any(pc.match_substring_regex(values, _padded())).as_py():
        stripped = pa.array([v.strip() for v in values.to_pylist()], pa.string()).dictionary_encode()
        codes = stripped.indices.to_numpy()[codes]
        values = stripped.dictionary
    if pc.any(pc.equal(pc.binary_length(values), 0)).as_py():
        raise Fallback
    return codes, values


def _encoded(column) -> tuple[np.ndarray, object]:
    """(codes, distinct values) of a string column, codes numbering the values in order of first occurrence."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    last = encoded.chunk(encoded.num_chunks - 1).dictionary
    if not all(_shared(chunk.dictionary, last) for chunk in encoded.chunks):
        encoded = pa.table({"c": encoded}).unify_dictionaries().column("c")
        last = encoded.chunk(0).dictionary
    codes = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks])
    return codes, last


def _shared(a, b) -> bool:
    """Whether two dictionaries are one array (pyarrow encodes a chunked column into chunks sharing the final
    dictionary; unifying them again would cost a hash of every value per chunk)."""
    return len(a) == len(b) and [x.address if x else 0 for x in a.buffers()] == [x.address if x else 0 for x in b.buffers()]


def _times(column, unit: str | None, path: str) -> tuple[np.ndarray, np.ndarray, records.Times]:
    """(seconds, sort basis, counts): each row's timestamp as records.Times reads it, the numbers to sort the
    rows by (the milliseconds as written when every one was divided by 1000 and is whole: they sort as integers,
    and as the seconds do), and a Times holding the counts its `describe` words."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        raw = pc.cast(column, pa.float64()).to_numpy()
    except pa.ArrowInvalid:  # an ISO-8601 date, white space, a number in other digits: read value by value
        return _times_by_value(column, unit, path)
    del column
    ms = np.abs(raw) > records.MS_ABOVE if unit is None else np.full(len(raw), unit == "ms")
    seconds = np.where(ms, raw / 1000, raw) if ms.any() else raw
    if not np.isfinite(seconds).all():
        raise Fallback
    times = records.Times(unit)
    times.ms = int(np.count_nonzero(ms))
    times.seconds = len(raw) - times.ms
    return seconds, raw if times.ms == len(raw) and _whole(raw) else seconds, times


def _whole(numbers: np.ndarray) -> bool:
    """Whether every number is a whole number below WHOLE (in size): one int64 holds it exactly."""
    return bool(np.abs(numbers).max() < WHOLE) and np.array_equal(numbers, np.floor(numbers))


def _times_by_value(column, unit: str | None, path: str) -> tuple[np.ndarray, np.ndarray, records.Times]:
    """`_times` by records.Times itself, once per distinct value."""
    codes, values = _encoded(column)
    probe = records.Times(unit)
    seconds, kinds = [], []
    for value in values.to_pylist():
        before = (probe.seconds, probe.ms, probe.iso)
        t = probe(path, 0, value.strip())
        if t is None:
            raise Fallback
        seconds.append(t)
        kinds.append([a != b for a, b in zip(before, (probe.seconds, probe.ms, probe.iso))].index(True))
    per_row = np.array(seconds, dtype=np.float64)[codes]
    times = records.Times(unit)
    times.seconds, times.ms, times.iso = (int(c) for c in np.bincount(np.array(kinds)[codes], minlength=3))
    return per_row, per_row, times


def _ratings(column, path: str) -> np.ndarray:
    """Each row's rating as records reads it; Fallback for a missing or unreadable one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        ratings = pc.cast(column, pa.float64()).to_numpy()
    except pa.ArrowInvalid:
        codes, values = _encoded(column)
        read = [records._rating(path, 0, v.strip()) for v in values.to_pylist()]
        if None in read:
            raise Fallback from None
        ratings = np.array(read, dtype=np.float64)[codes]
    if np.isnan(ratings).any():
        raise Fallback
    return ratings


# ---- formats.load ------------------------------------------------------------------------------------------


def _min_rating(rows: _Rows, users, ratings: np.ndarray, threshold: float, notes: list[str]) -> tuple[_Rows, object]:
    """The rows rated `threshold` or more, users renumbered in order of first occurrence among them."""
    keep = ratings >= threshold
    if not keep.any():
        raise Fallback
    notes.append(formats.min_rating_note(int(np.count_nonzero(keep)), len(keep), threshold))
    if keep.all():
        return rows, users
    rows = rows.take(keep)
    old = _first_order(rows.user, rows.line, len(users))
    new = np.empty(len(users), dtype=np.int32)
    new[old] = np.arange(len(old), dtype=np.int32)
    rows.user = new[rows.user]
    return rows, users.take(old)


def _first_order(codes: np.ndarray, line: np.ndarray, num_codes: int) -> np.ndarray:
    """The codes that occur, in order of their first line."""
    first = np.full(num_codes, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, codes, line)
    present = np.flatnonzero(first < np.iinfo(np.int64).max)
    return present[np.argsort(first[present])]


def _duplicates(rows: _Rows, num_items: int, dedup: bool, notes: list[str]) -> _Rows:
    """formats._duplicates on sorted rows: with timestamps, count the rows repeating an earlier (user, item,
    timestamp) and drop them with --dedup; without, count the users holding an item more than once."""
    if rows.time is None:
        users, extra = _repeats(rows.user, rows.item, num_items)
        if users:
            notes.append(formats.repeats_note(users, extra))
        return rows
    repeat = _repeated(rows)
    if repeat is None:
        return rows
    notes.append(formats.duplicates_note(int(np.count_nonzero(repeat)), dedup))
    return rows.take(~repeat) if dedup else rows


def _repeats(user: np.ndarray, item: np.ndarray, num_items: int) -> tuple[int, int]:
    """(users holding an item more than once, interactions beyond each user's first with each item)."""
    pairs = np.sort(user.astype(np.int64) * num_items + item)
    same = pairs[1:] == pairs[:-1]
    extra = int(np.count_nonzero(same))
    return (len(np.unique(pairs[1:][same] // num_items)) if extra else 0), extra


def _repeated(rows: _Rows) -> np.ndarray | None:
    """Which rows (sorted by user and time, ties in file order) repeat an earlier row's user, item and
    timestamp; None when none does. Only rows tied with a neighbour in user and time can."""
    tied = (rows.user[1:] == rows.user[:-1]) & (rows.time[1:] == rows.time[:-1])
    if not tied.any():
        return None
    run = np.concatenate(([True], ~tied)).cumsum()
    at = np.flatnonzero(np.concatenate(([False], tied)) | np.concatenate((tied, [False])))
    at = at[np.lexsort((rows.line[at], rows.item[at], run[at]))]
    again = (run[at][1:] == run[at][:-1]) & (rows.item[at][1:] == rows.item[at][:-1])
    repeat = np.zeros(len(rows.user), dtype=bool)
    repeat[at[1:][again]] = True
    return repeat if repeat.any() else None


def _interacted(rows: _Rows, item_names) -> dict[str, None]:
    """The interacted item ids in order of first occurrence in the file (formats.load's `interacted`)."""
    return dict.fromkeys(item_names.take(_first_order(rows.item, rows.line, len(item_names))).to_pylist())


# ---- prepare.build -----------------------------------------------------------------------------------------


def _check_known(item: np.ndarray, item_names, items: dict) -> None:
    """Fallback when an interacted item has no record in the items file (the row path names its line)."""
    present = item_names.take(np.flatnonzero(np.bincount(item, minlength=len(item_names)))).to_pylist()
    if not all(iid in items for iid in present):
        raise Fallback


def _drop_untexted(rows: _Rows, users, item_names, items: dict | None, notes: list[str]) -> tuple[_Rows, object]:
    """prepare._drop_items_without_text: the rows of items with text, users renumbered in order of first
    occurrence among them."""
    if items is None:
        raise Fallback
    present = np.flatnonzero(np.bincount(rows.item, minlength=len(item_names)))
    untexted = np.zeros(len(item_names), dtype=bool)
    untexted[present] = [not items[iid].text for iid in item_names.take(present).to_pylist()]
    drop = untexted[rows.item]
    if drop.all():
        raise Fallback
    notes.append(untexted_note(int(np.count_nonzero(untexted)), int(np.count_nonzero(drop))))
    return _regroup(rows.take(~drop), users) if drop.any() else (rows, users)


def _regroup(rows: _Rows, users) -> tuple[_Rows, object]:
    """Sorted rows with their users put back in order of first occurrence in the file, which dropping rows
    can change; each user's rows keep their order."""
    starts, lengths = _groups(rows.user)
    first = np.minimum.reduceat(rows.line, starts)
    if (first[1:] > first[:-1]).all():
        return rows, users
    order = np.argsort(first)  # the groups in order of first occurrence (no two share a line)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    old = rows.user[starts][order]
    user, moved = _sort(np.repeat(rank, lengths), len(order))
    rows = rows.take(moved)
    rows.user = user
    return rows, users.take(old)


def _filter(rows: _Rows, settings: Settings, num_items: int, num_users: int) -> _Rows:
    """--kcore, --max-history and --drop-short, as prepare.build applies them; Fallback when no user is left."""
    if settings.kcore > 0:
        rows = _kcore(rows, settings.kcore, max(settings.kcore, 3) if settings.drop_short else settings.kcore, num_items, num_users)
    if settings.max_history > 0 and len(rows.user):
        starts, lengths = _groups(rows.user)
        position = np.arange(len(rows.user)) - np.repeat(starts, lengths)
        rows = rows.take(position >= np.repeat(lengths - settings.max_history, lengths))
    if settings.drop_short and len(rows.user):
        _, lengths = _groups(rows.user)
        rows = rows.take(np.repeat(lengths >= 3, lengths))
    if not len(rows.user):
        raise Fallback
    return rows


def _kcore(rows: _Rows, k: int, k_user: int, num_items: int, num_users: int) -> _Rows:
    """prepare._kcore: drop the rows of items with fewer than k rows, then of users with fewer than k_user,
    until nothing changes."""
    while len(rows.user):
        keep = np.bincount(rows.item, minlength=num_items)[rows.item] >= k
        keep &= np.bincount(rows.user[keep], minlength=num_users)[rows.user] >= k_user
        if keep.all():
            break
        rows = rows.take(keep)
    return rows


def _item_order(item: np.ndarray, item_names, items: dict | None) -> tuple[np.ndarray, list[str]]:
    """(each row's item index, the item ids in index order): prepare._item_order, the items file's order when
    there is one, else the order of first occurrence in the sequences end to end."""
    if items is None:
        order = _first_order(item, np.arange(len(item), dtype=np.int64), len(item_names))
        index = np.empty(len(item_names), dtype=np.int64)
        index[order] = np.arange(len(order))
        return index[item], item_names.take(order).to_pylist()
    present = np.flatnonzero(np.bincount(item, minlength=len(item_names)))
    code = dict(zip(item_names.take(present).to_pylist(), present.tolist()))
    ids = [iid for iid in items if iid in code]
    index = np.full(len(item_names), -1, dtype=np.int64)
    index[[code[iid] for iid in ids]] = np.arange(len(ids))
    return index[item], ids


# ---- sorting -----------------------------------------------------------------------------------------------


def _sorted(rows: _Rows, num_users: int) -> _Rows:
    """The rows sorted by user, then time, then position in the file: prepare._chronological's stable sort."""
    if rows.basis is None:
        user, order = _sort(rows.user, num_users)
    else:
        by_time = _time_order(rows.basis)
        user, order = _sort(rows.user[by_time], num_users)
        order = by_time[order]
    line = order if rows.line[-1] == len(order) - 1 else rows.line[order]  # all lines there: line i is row i
    return _Rows(user, rows.item[order], None if rows.time is None else rows.time[order], None, line)


def _time_order(basis: np.ndarray) -> np.ndarray:
    """A stable argsort of times: as integers when they are whole numbers (as Unix times are), else of floats."""
    if _whole(basis):
        whole = basis.astype(np.int64)
        low = int(whole.min())
        whole -= low
        return _sort(whole, int(whole.max()) + 1)[1]
    return np.argsort(basis, kind="stable")


def _sort(key: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted key, stable argsort) of integers in [0, bound): the key and the position packed into one int64 and
    sorted as plain values (numpy sorts those several times faster than it argsorts), else numpy's stable argsort."""
    n = len(key)
    bits = max(1, (n - 1).bit_length())
    if max(1, bound - 1).bit_length() + bits > 63:
        order = np.argsort(key, kind="stable")
        return key[order], order
    packed = np.left_shift(key, bits, dtype=np.int64)
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    order = packed & ((1 << bits) - 1)
    packed >>= bits
    return packed, order


def _groups(user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first position, length) of each run of equal user codes in rows grouped by user."""
    starts = np.flatnonzero(np.concatenate(([True], user[1:] != user[:-1])))
    return starts, np.diff(np.append(starts, len(user)))

