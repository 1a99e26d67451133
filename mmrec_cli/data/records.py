"""Readers for the raw inputs of `mmrec prepare`: interactions (CSV, TSV, JSONL) and items (JSONL).

Every malformed record is reported as `file:line: what is wrong; how to fix it`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from mmrec_cli.errors import MmrecError, bad_input
from mmrec_cli.io.jsonl import read_jsonl, read_lines


@dataclass
class Interaction:
    user: str
    item: str
    time: float | None
    line: int


@dataclass
class Item:
    item_id: str
    text: list[str]  # one or more sentences
    images: list[str] = field(default_factory=list)
    line: int = 0


def read_interactions(path: str) -> list[Interaction]:
    """Interactions in file order; the format follows the extension (.csv, .tsv, anything else JSONL).

    A file with a timestamp column (a CSV/TSV header naming it, a JSON record holding the key) needs a
    timestamp on every record: one without would be sorted before all the others."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = _read_delimited(path, "," if suffix == ".csv" else "\t")
    else:
        rows = read_jsonl(path) if path != "-" else _stdin_jsonl(read_jsonl(path))
    out: list[Interaction] = []
    timed, untimed = False, None  # whether the file has timestamps; the first record without one
    for lineno, row in rows:
        out.append(_interaction(path, lineno, row))
        timed = timed or "timestamp" in row
        if out[-1].time is None and untimed is None:
            untimed = lineno
        if timed and untimed is not None:
            raise missing_time(path, untimed)
    if not out:
        raise bad_input(f"{path}: no interactions found; the file is empty")
    return out


def missing_time(where: str, lineno: int) -> MmrecError:
    return bad_input(f"{where}:{lineno}: missing timestamp; give every interaction a timestamp, or drop the timestamp column to keep the file's order")


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


def _read_delimited(path: str, delim: str):
    lines = read_lines(path)
    try:
        first_no, first = next(lines)
    except StopIteration:
        raise bad_input(f"{path}: no interactions found; the file is empty") from None
    header = [h.strip() for h in _split(path, first_no, first, delim)]
    for need in ("user_id", "item_id"):
        if need not in header:
            raise bad_input(f"{path}:{first_no}: header lacks '{need}'; the first line must name the columns user_id, item_id[, timestamp]")
    for lineno, line in lines:
        values = _split(path, lineno, line, delim)
        if len(values) != len(header):
            raise bad_input(f"{path}:{lineno}: expected {len(header)} fields, got {len(values)}; check the delimiter and quoting")
        yield lineno, dict(zip(header, (v.strip() for v in values)))


def _split(path: str, lineno: int, line: str, delim: str) -> list[str]:
    """One line's fields; the csv module's own errors (a bare CR, a field over its size limit) name the line."""
    try:
        return next(csv.reader([line], delimiter=delim), [])
    except csv.Error as err:
        raise bad_input(f"{path}:{lineno}: unreadable record ({err}); records must be one per line, with quoted fields") from None


def _interaction(path: str, lineno: int, row: dict) -> Interaction:
    user, item = row.get("user_id"), row.get("item_id")
    for name, value in (("user_id", user), ("item_id", item)):
        if value is None or value == "" or isinstance(value, (dict, list, bool)):
            raise bad_input(f"{path}:{lineno}: missing or invalid '{name}'; every record needs user_id and item_id")
    return Interaction(str(user), str(item), _time(path, lineno, row.get("timestamp")), lineno)


def _time(path: str, lineno: int, value) -> float | None:
    if value is None or value == "":
        return None
    try:
        t = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise bad_input(f"{path}:{lineno}: timestamp {value!r} is not a number; use seconds since the epoch") from None
    if t != t or t in (float("inf"), float("-inf")):
        raise bad_input(f"{path}:{lineno}: timestamp {value!r} is not finite")
    return t


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
