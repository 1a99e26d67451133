"""JSON lines in and out; '-' means stdin/stdout. Errors name the file and line."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from mmrec_cli.errors import bad_input, not_found
from mmrec_cli.io.atomic import atomic_path


def open_binary(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    if not p.is_file():
        raise not_found(f"{path}: no such file; check the path")
    try:
        return open(p, "rb")
    except OSError as err:
        raise not_found(f"{path}: cannot read ({err.strerror}); check its permissions") from err


COMPRESSED = (".gz", ".bz2")


def read_lines(path: str, data: bytes | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) for each non-blank line; each line is decoded on its own, so a non-UTF-8
    byte is reported on the line where it is. A file ending .gz or .bz2 is decompressed as it is read
    (streaming); a truncated or corrupt one is reported naming the file. `data`: the bytes of `path`,
    read before (standard input, which can be read only once, by a reader that reads twice)."""
    f = io.BytesIO(data) if data is not None else open_binary(path)
    stream = _decompressing(path, f) if data is None else f
    lineno = 0
    try:
        while True:
            try:
                raw = stream.readline()
            except (EOFError, OSError, zlib.error) as err:  # truncated (EOFError) or corrupt (BadGzipFile, OSError, zlib.error)
                if stream is f:
                    raise
                raise _broken(path, lineno, err) from None
            if not raw:
                return
            lineno += 1
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise bad_input(f"{path}:{lineno}: not valid UTF-8 ({err.reason}); re-encode the file as UTF-8") from err
            if line.strip():
                yield lineno, line
    finally:
        if stream is not f:
            stream.close()
        if f is not sys.stdin.buffer:
            f.close()


def compression(path: str) -> str | None:
    """'gzip' or 'bz2' for a path ending .gz or .bz2, else None."""
    suffix = Path(path).suffix.lower()
    return {".gz": "gzip", ".bz2": "bz2"}.get(suffix)


def strip_compression(path: str) -> str:
    """The file name without a trailing .gz/.bz2: 'ratings.csv.gz' -> 'ratings.csv'."""
    name = Path(path).name
    return name[: -len(Path(name).suffix)] if compression(path) else name


def _decompressing(path: str, f: BinaryIO) -> BinaryIO:
    kind = compression(path) if path != "-" else None
    if kind == "gzip":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if kind == "bz2":
        return bz2.BZ2File(f, mode="rb")
    return f


def _broken(path: str, lineno: int, err: BaseException):
    kind = compression(path) or "compressed"
    where = f"after line {lineno}" if lineno else "before the first line"
    if isinstance(err, EOFError):
        what = f"the {kind} data ends early ({where}): the file is truncated"
    else:
        what = f"not valid {kind} data ({where}: {str(err).rstrip('.') or type(err).__name__})"
    return bad_input(f"{path}: {what}; download or compress it again")


def read_stdin() -> bytes:
    """All of standard input, for a reader that reads its input more than once."""
    return sys.stdin.buffer.read()


def read_jsonl(path: str, data: bytes | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in read_lines(path, data):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise bad_input(f"{path}:{lineno}: malformed JSON ({err.msg}); fix or remove the line") from err
        except (ValueError, RecursionError) as err:  # numbers over Python's 4300-digit limit, very deep nesting
            raise bad_input(f"{path}:{lineno}: unreadable JSON ({str(err).split(';')[0]}); fix or remove the line") from err
        if not isinstance(obj, dict):
            raise bad_input(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
        yield lineno, obj


@contextmanager
def jsonl_writer(path: str | None) -> Iterator:
    """A function that writes one record per call; to stdout for None or '-', else atomically to a file."""
    with line_writer(path) as write:
        yield lambda rec: write(json.dumps(rec) + "\n")


@contextmanager
def line_writer(path: str | None) -> Iterator:
    """A function that writes ready text (whole JSON lines) per call; to stdout for None or '-', else atomically."""
    if path in (None, "-"):
        yield sys.stdout.write
        sys.stdout.flush()
        return
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        yield f.write


def write_json(path: str | None, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    if path in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
