"""JSON lines in and out; '-' means stdin/stdout. Errors name the file and line."""

from __future__ import annotations

import io
import json
import sys
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


def read_lines(path: str, data: bytes | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) for each non-blank line; each line is decoded on its own, so a non-UTF-8
    byte is reported on the line where it is. `data`: the bytes of `path`, read before (standard input,
    which can be read only once, by a reader that reads twice)."""
    f = io.BytesIO(data) if data is not None else open_binary(path)
    try:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise bad_input(f"{path}:{lineno}: not valid UTF-8 ({err.reason}); re-encode the file as UTF-8") from err
            if line.strip():
                yield lineno, line
    finally:
        if f is not sys.stdin.buffer:
            f.close()


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
    if path in (None, "-"):
        yield lambda rec: sys.stdout.write(json.dumps(rec) + "\n")
        sys.stdout.flush()
        return
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        yield lambda rec: f.write(json.dumps(rec) + "\n")


def write_json(path: str | None, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    if path in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
