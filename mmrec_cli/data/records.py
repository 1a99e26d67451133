"""Readers for the raw inputs of `mmrec prepare`: interactions (CSV, TSV, JSONL) and items (JSONL).

Every malformed record is reported as `file:line: what is wrong; how to fix it`. The columns default to
user_id, item_id[, timestamp]; `Columns` maps others (header names, JSON keys or 0-based positions), and
`Times` reads timestamps (numbers, or ISO-8601 dates as seconds). Files ending .gz/.bz2 are decompressed
as they are read (io.jsonl.read_lines).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from mmrec_cli.errors import MmrecError, bad_input
from mmrec_cli.io.jsonl import read_jsonl, read_lines, strip_compression


@dataclass
class Interaction:
    user: str
    item: str
    time: float | None
    line: int
    rating: float | None = None


@dataclass
class Item:
    item_id: str
    text: list[str]  # one or more sentences
    images: list[str] = field(default_factory=list)
    line: int = 0


Key = str | int | tuple  # a header name / JSON key, a 0-based position, or JSON keys tried in turn


@dataclass
class Columns:
    """Where a record's user, item, timestamp and rating are: header names (JSON keys) or 0-based positions.

    `time` and `rating` may be absent from the file unless named in `given` (the columns an option named,
    by role: {"user": "--user-col"}), which also words the errors. `sep`: the delimiter (None: by the file's
    extension; a JSON lines file has none); `header`: whether the first line names the columns; `typed`:
    RecBole's 'name:type' header fields, matched by name."""

    user: Key = "user_id"
    item: Key = "item_id"
    time: Key | None = "timestamp"
    rating: Key | None = None
    sep: str | None = None
    header: bool = True
    typed: bool = False
    given: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict:
        """The mapping, for the dataset's metadata."""
        key = lambda k: list(k) if isinstance(k, tuple) else k  # noqa: E731
        out = {"user": key(self.user), "item": key(self.item), "time": key(self.time)}
        if self.rating is not None:
            out["rating"] = key(self.rating)
        return out


ROLES = ("user", "item", "time", "rating")
MS_ABOVE = 1e11  # a number of seconds over this is after the year 5138: it is milliseconds
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?$")


class Times:
    """Timestamps to numbers: a number as given (`unit` "raw", the library's default), as seconds ("s"), as
    milliseconds ("ms"), or None: milliseconds when over 1e11, else seconds; an ISO-8601 date or date-time
    string is seconds since the epoch (UTC when it names no zone). Counts what it read, for `describe`."""

    def __init__(self, unit: str | None = "raw"):
        self.unit = unit
        self.seconds = self.ms = self.iso = 0

    def __call__(self, path: str, lineno: int, value) -> float | None:
        if value is None or value == "":
            return None
        try:
            t = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
            t = self._iso(path, lineno, value)
        else:
            if self.unit == "ms" or (self.unit is None and abs(t) > MS_ABOVE):
                self.ms += 1
                t /= 1000
            else:
                self.seconds += 1
        if t != t or t in (float("inf"), float("-inf")):
            raise bad_input(f"{path}:{lineno}: timestamp {value!r} is not finite")
        return t

    def _iso(self, path: str, lineno: int, value) -> float:
        text = value.strip() if isinstance(value, str) else None
        if text and _ISO.match(text):
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                self.iso += 1
                return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
        raise bad_input(
            f"{path}:{lineno}: timestamp {value!r} is not a number or an ISO-8601 date; use seconds since the epoch "
            "(or milliseconds, or a date such as 2014-03-01T12:00:00Z)"
        ) from None

    def describe(self) -> str | None:
        """One line: how the timestamps were read; None when there were none."""
        parts = []
        if self.seconds:
            parts.append("seconds since the epoch" + (f" ({self.seconds})" if self.ms or self.iso else ""))
        if self.ms:
            why = "--time-unit ms" if self.unit == "ms" else "numbers over 1e11"
            parts.append(f"milliseconds since the epoch ({why}" + (f"; {self.ms})" if self.seconds or self.iso else ")"))
        if self.iso:
            parts.append("ISO-8601 dates (UTC unless they name a zone)" + (f" ({self.iso})" if self.seconds or self.ms else ""))
        if not parts:
            return None
        hint = {None: "; --time-unit s|ms overrides", "s": " (--time-unit s)", "ms": "", "raw": ""}[self.unit]
        if self.unit == "s" and (self.ms or self.iso):
            hint = ""
        return "timestamps: " + ", ".join(parts) + (hint if self.seconds + self.ms else "")


def read_interactions(path: str, columns: Columns | None = None, times: Times | None = None) -> list[Interaction]:
    """Interactions in file order. The format follows `columns.sep`, else the extension (.gz/.bz2 aside):
    .csv, .tsv, .txt and .inter (a .txt whose first line is a JSON object is JSON lines) are delimited,
    anything else JSON lines; standard input ('-') is JSON lines unless a `sep` is given.

    A file with a timestamp column (a CSV/TSV header naming it, a JSON record holding the key) needs a
    timestamp on every record: one without would be sorted before all the others."""
    columns = columns or Columns()
    sep = delimiter(path, columns.sep)
    if sep is not None:
        rows = _read_delimited(path, sep, columns)
    else:
        rows = json_rows(path, columns, read_jsonl(path) if path != "-" else _stdin_jsonl(read_jsonl(path)))
    return from_rows(path, rows, columns, times or Times())


def delimiter(path: str, sep: str | None) -> str | None:
    """The field delimiter of an interactions file, or None for JSON lines."""
    if sep is not None or path == "-":
        return sep
    name = strip_compression(path).lower()
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix == ".csv":
        return ","
    if suffix in (".tsv", ".inter"):
        return "\t"
    if suffix == ".txt":
        first = next(read_lines(path), (0, ""))[1]
        return None if first.lstrip().startswith("{") else "\t"
    return None


def from_rows(path: str, rows: Iterator[tuple[int, dict]], columns: Columns, times: Times) -> list[Interaction]:
    """Interactions from (line, {role: value}) rows; a role is absent where the file has no such column."""
    names = _labels(columns)
    out: list[Interaction] = []
    timed, untimed = False, None  # whether the file has timestamps; the first record without one
    for lineno, row in rows:
        out.append(_interaction(path, lineno, row, names, times))
        timed = timed or "time" in row
        if out[-1].time is None and untimed is None:
            untimed = lineno
        if timed and untimed is not None:
            raise missing_time(path, untimed)
    if not out:
        raise bad_input(f"{path}: no interactions found; the file is empty")
    return out


def missing_time(where: str, lineno: int) -> MmrecError:
    return bad_input(f"{where}:{lineno}: missing timestamp; give every interaction a timestamp, or drop the timestamp column to keep the file's order")


def _labels(columns: Columns) -> dict[str, str]:
    def label(key):
        if isinstance(key, tuple):
            key = key[0]
        return f"column {key}" if isinstance(key, int) else str(key)

    return {role: label(getattr(columns, role)) for role in ROLES if getattr(columns, role) is not None}


def _stdin_jsonl(rows):
    """Standard input has no extension to tell its format: it is JSON lines, and an error on its first line
    (a CSV header, say) says so."""
    try:
        yield next(rows)
    except StopIteration:
        return
    except MmrecError as err:
        raise bad_input(f"{err}; standard input ('-') is read as JSON lines: pass CSV/TSV as a file ending .csv/.tsv") from None
    yield from rows


def json_rows(path: str, columns: Columns, records) -> Iterator[tuple[int, dict]]:
    """(line, {role: value}) of JSON records; a key an option named must be on the first record."""
    keys = {role: getattr(columns, role) for role in ROLES if getattr(columns, role) is not None}
    for role, key in keys.items():
        if isinstance(key, int):
            raise bad_input(f"{path}: {columns.given.get(role, role)} {key}: a JSON lines file names its fields by key, not by position")
    lookups = [(role, _alternatives(key)) for role, key in keys.items()]
    first = True
    for lineno, obj in records:
        if first:
            for role, key in keys.items():
                if role in columns.given and not any(k in obj for k in _alternatives(key)):
                    raise bad_input(f"{path}:{lineno}: no field '{key}' ({columns.given[role]}); the record's fields are: {', '.join(map(str, obj))}")
            first = False
        row = {}
        for role, alternatives in lookups:
            for k in alternatives:
                if k in obj:
                    row[role] = obj[k]
                    break
        yield lineno, row


def _alternatives(key: Key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _read_delimited(path: str, delim: str, columns: Columns) -> Iterator[tuple[int, dict]]:
    lines = read_lines(path)
    try:
        first_no, first = next(lines)
    except StopIteration:
        raise bad_input(f"{path}: no interactions found; the file is empty") from None
    index, width = layout(path, first_no, first, delim, columns)
    body = lines if columns.header else _chain((first_no, first), lines)
    for lineno, line in _records(path, body) if len(delim) == 1 else body:
        values = _split(path, lineno, line, delim)
        if len(values) != width:
            expected = f"expected {width} fields" + ("" if columns.header else f" (as on line {first_no})")
            raise bad_input(f"{path}:{lineno}: {expected}, got {len(values)}; check the delimiter and quoting")
        yield lineno, {role: values[i].strip() for role, i in index.items()}


def layout(path: str, lineno: int, first: str, delim: str, columns: Columns) -> tuple[dict[str, int], int]:
    """({role: column index}, number of fields) of a delimited file, from its first line: the header, or
    (--no-header) the first record, whose field count every record must have."""
    if not columns.header:
        width = len(_split(path, lineno, first, delim))
        return _positions(path, lineno, width, columns), width
    header = [h.strip() for h in _split(path, lineno, first, delim)]
    if columns.typed:
        header = [h.rsplit(":", 1)[0] if ":" in h else h for h in header]
    return _resolve(path, lineno, header, columns), len(header)


def _records(path: str, lines) -> Iterator[tuple[int, str]]:
    """Physical lines joined into CSV records: a quoted field may hold line breaks (review texts do). A record
    keeps the number of the line it starts on, so that a message names where to look."""
    start, parts = 0, []
    for lineno, line in lines:
        if not parts:
            start = lineno
        parts.append(line)
        if sum(p.count('"') for p in parts) % 2 == 0:  # quotes inside a field are doubled: an even count closes
            yield start, "".join(parts) if len(parts) == 1 else "".join(p if p.endswith("\n") else p + "\n" for p in parts[:-1]) + parts[-1]
            parts = []
    if parts:
        raise bad_input(f"{path}:{start}: a quoted field opened on this line is never closed; close its quote (\") or remove it")


def _chain(first, rest):
    yield first
    yield from rest


def _resolve(path: str, lineno: int, header: list[str], columns: Columns) -> dict[str, int]:
    """Each role's column index in a header: by name, else by a 0-based position; an optional one may be missing."""
    index = {}
    for role in ROLES:
        key = getattr(columns, role)
        if key is None:
            continue
        names = [k for k in _alternatives(key) if str(k) in header]
        if names:
            index[role] = header.index(str(names[0]))
        elif isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            pos = int(key)
            if not 0 <= pos < len(header):
                raise bad_input(f"{path}:{lineno}: no column {pos} ({columns.given.get(role, role)}); the header has {len(header)} columns (0..{len(header) - 1}): {', '.join(header)}")
            index[role] = pos
        elif role in columns.given:
            raise bad_input(f"{path}:{lineno}: no column '{key}' ({columns.given[role]}); the header's columns are: {', '.join(header)}")
        elif role in ("user", "item"):
            raise bad_input(
                f"{path}:{lineno}: header lacks '{key}'; the first line must name the columns user_id, item_id[, timestamp] "
                f"(its columns: {', '.join(header)}), or name yours with --user-col/--item-col/--time-col"
            )
    return index


def _positions(path: str, lineno: int, width: int, columns: Columns) -> dict[str, int]:
    """Each role's 0-based position in a file without a header."""
    index = {}
    for role in ROLES:
        key = getattr(columns, role)
        if key is None:
            continue
        if not (isinstance(key, int) or (isinstance(key, str) and key.isdigit())):
            raise bad_input(f"{path}: {columns.given.get(role, role)} {key}: a file without a header (--no-header) names its columns by 0-based position, e.g. 0")
        if not 0 <= int(key) < width:
            raise bad_input(f"{path}:{lineno}: no column {key} ({columns.given.get(role, role)}); the line has {width} fields (0..{width - 1})")
        index[role] = int(key)
    return index


def _split(path: str, lineno: int, line: str, delim: str) -> list[str]:
    """One line's fields; the csv module's own errors (a bare CR, a field over its size limit) name the line.
    A delimiter of several characters (MovieLens '::') splits the line as it is, without quoting."""
    if len(delim) > 1:
        return line.rstrip("\r\n").split(delim)
    try:
        return next(csv.reader([line], delimiter=delim), [])
    except csv.Error as err:
        raise bad_input(f"{path}:{lineno}: unreadable record ({err}); records must be one per line, with quoted fields") from None


def _interaction(path: str, lineno: int, row: dict, names: dict[str, str], times: Times) -> Interaction:
    user, item = row.get("user"), row.get("item")
    for role, value in (("user", user), ("item", item)):
        if value is None or value == "" or isinstance(value, (dict, list, bool)):
            raise bad_input(f"{path}:{lineno}: missing or invalid '{names[role]}'; every record needs {names['user']} and {names['item']}")
    return Interaction(str(user), str(item), times(path, lineno, row.get("time")), lineno, _rating(path, lineno, row.get("rating")))


def _rating(path: str, lineno: int, value) -> float | None:
    if value is None or value == "":
        return None
    try:
        r = float(value)
    except (TypeError, ValueError, OverflowError):
        raise bad_input(f"{path}:{lineno}: rating {value!r} is not a number") from None
    if r != r:
        raise bad_input(f"{path}:{lineno}: rating {value!r} is not a number")
    return r


def read_items(path: str, data: bytes | None = None) -> dict[str, Item]:
    """Items by id from JSONL: item_id, text (string or list of sentences), images (path or list); `data`:
    the bytes of `path` when they were read before (io.jsonl.read_lines)."""
    items: dict[str, Item] = {}
    for lineno, obj in read_jsonl(path, data):
        item = _item(path, lineno, obj)
        if item.item_id in items:
            raise bad_input(f"{path}:{lineno}: duplicate item_id '{item.item_id}' (first on line {items[item.item_id].line}); keep one record per item")
        items[item.item_id] = item
    if not items:
        raise bad_input(f"{path}: no items found; the file is empty")
    return items


def _item(path: str, lineno: int, obj: dict) -> Item:
    item_id = obj.get("item_id")
    if item_id is None or item_id == "" or isinstance(item_id, (dict, list, bool)):
        raise bad_input(f"{path}:{lineno}: missing or invalid 'item_id'; every item record needs one")
    text = obj.get("text", "")
    if isinstance(text, str):
        text = [text] if text.strip() else []
    elif not (isinstance(text, list) and all(isinstance(t, str) for t in text)):
        raise bad_input(f"{path}:{lineno}: 'text' must be a string or a list of strings")
    images = obj.get("images", obj.get("image", []))
    if isinstance(images, str):
        images = [images]
    elif not (isinstance(images, list) and all(isinstance(i, str) for i in images)):
        raise bad_input(f"{path}:{lineno}: 'images' must be a path or a list of paths")
    return Item(str(item_id), [t for t in text if t.strip()], images, lineno)
