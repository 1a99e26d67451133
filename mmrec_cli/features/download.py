"""`mmrec images`: fetch the images that items name by http(s) URL into a local folder, and rewrite the items.

Each image is saved under its content: FOLDER/ab/<sha256 of the bytes>.<ext>, the extension of the type found in
the bytes (never the URL's or the server's word), so two URLs with the same bytes share one file. Downloads run
on a few threads, at most `per_host` at a time to one host, each request under a timeout and a size limit;
connection errors, timeouts, HTTP 408, 429 and 5xx are retried with exponential backoff, other failures are not.

FOLDER/manifest.jsonl records each URL's outcome as it comes ({"url", "file", "bytes"} or {"url", "failed",
"transient"}), so an interrupted run loses nothing: with `resume`, fetched URLs whose file is still there and
lasting failures (404, not an image, too large for the same limit) are not requested again; transient
failures (timed out, connection failed, 408, 429, 5xx) are. The rewritten items name each fetched image by its path
relative to the output file's folder, the default image root of `mmrec extract`; failed URLs are dropped.

Nothing here imports typer; messages go through `Hooks`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mmrec_cli import __version__
from mmrec_cli.errors import IO_FAILURE, MmrecError, bad_input, check_min, out_of_range, usage
from mmrec_cli.features.plan import Problems

MANIFEST = "manifest.jsonl"
USER_AGENT = f"mmrec/{__version__} (+images)"
CHUNK = 64 * 1024
MAX_WAIT = 60.0  # seconds: the longest wait before a retry, whatever the backoff or a Retry-After header says

# failure reasons, as the manifest stores them and the summary shows them
NOT_FOUND = "404 not found"
NOT_AN_IMAGE = "not an image"
TOO_LARGE = "too large"
TIMED_OUT = "timed out"
CONNECTION = "connection failed"
INVALID_URL = "invalid URL"
TLS = "TLS certificate rejected"
SHOWN = {TOO_LARGE: "too large (over --max-bytes)"}

_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))
_PIL_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "ICO": "ico"}


@dataclass(frozen=True)
class Limits:
    """How downloads run: threads, retries, seconds and bytes per request, requests at a time per host."""

    jobs: int = 4
    retries: int = 3
    timeout: float = 30.0
    max_bytes: int = 20_000_000
    per_host: int = 2
    backoff: float = 0.5  # seconds before the first retry, doubled before each next one

    def check(self) -> None:
        """A usage error (exit 2) for a value no run can use, naming the option."""
        check_min({"--jobs": self.jobs, "--per-host": self.per_host, "--max-bytes": self.max_bytes}, 1)
        check_min({"--retries": self.retries}, 0)
        if not self.timeout > 0:
            raise out_of_range("--timeout", self.timeout, "a number of seconds above 0, e.g. 30")


@dataclass
class Hooks:
    """Where messages go (one line each) and the progress bar (as `mmrec_cli.cli._common.progress`)."""

    note: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)
    bar: Callable = lambda description, total, unit=None: nullcontext(lambda n=1: None)


@dataclass
class Outcome:
    """One URL's result: the saved file (relative to the folder, '/'-separated) or why there is none."""

    url: str
    file: str | None = None
    size: int = 0
    failed: str | None = None
    transient: bool = False
    detail: str = ""
    max_bytes: int = 0  # the limit a TOO_LARGE failure was found under

    def record(self) -> dict:
        """The manifest line."""
        if self.file is not None:
            return {"url": self.url, "file": self.file, "bytes": self.size}
        rec = {"url": self.url, "failed": self.failed, "transient": self.transient}
        if self.detail:
            rec["detail"] = self.detail
        if self.failed == TOO_LARGE:
            rec["max_bytes"] = self.max_bytes
        return rec


@dataclass
class Report:
    """What a run did, by distinct URL: fetched now, present from an earlier run, failed; and the items written."""

    fetched: int = 0
    files: int = 0  # distinct files the fetched URLs were saved as
    present: int = 0
    failures: Problems = field(default_factory=lambda: Problems(labels=SHOWN))  # failed URLs by reason
    items: int = 0
    images: int = 0  # image entries in the written items
    dropped: int = 0  # URL entries dropped from the items (their URL failed)
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def lines(self, folder: str, output: str) -> list[str]:
        """The summary on stderr, one line each: fetched, already present, failed, written."""
        out = [f"fetched: {self.fetched} URLs into {folder} ({self.files} distinct images)"]
        if self.present:
            out.append(f"already present: {self.present} URLs (fetched by an earlier run, {MANIFEST})")
        if self.failures.counts:
            out.append(f"failed: {self.failures.total()} URLs, dropped from the items: {self.failures.summary()}")
        name = "standard output" if output == "-" else output
        out.append(f"wrote {name}: {self.items} items, {self.images} images ({self.dropped} failed URL entries dropped)")
        return out


# ---- what the bytes are -------------------------------------------------------------------------------------


def is_url(entry: str) -> bool:
    """An http:// or https:// URL (any case); everything else is a local path."""
    return entry[:8].lower().startswith(("http://", "https://"))


def image_type(data: bytes) -> str | None:
    """The file extension of the image type the bytes hold (magic numbers, else PIL), or None."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) < 8 or data.lstrip()[:1] == b"<":  # empty, or HTML / XML: an error page, not a picture
        return None
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
    except Exception:  # PIL's UnidentifiedImageError, and what it raises for broken headers
        return None
    return _PIL_EXT.get(fmt or "", (fmt or "").lower() or None)


def content_name(data: bytes, ext: str) -> str:
    """The file's name under the folder: 'ab/abcdef...<64 hex>.ext', from the sha256 of the bytes."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{digest[:2]}/{digest}.{ext}"


def store(folder: Path, data: bytes, ext: str) -> str:
    """Save the bytes under their content name (atomically; kept if already there); return that name."""
    from mmrec_cli.io.atomic import write_bytes

    name = content_name(data, ext)
    path = folder / name
    if not (path.is_file() and path.stat().st_size == len(data)):
        write_bytes(path, data)
    return name


# ---- one URL --------------------------------------------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, reason: str, transient: bool, detail: str = "", wait: float = 0.0):
        super().__init__(reason)
        self.reason, self.transient, self.detail, self.wait = reason, transient, detail, wait


class HostGate:
    """At most `per_host` requests at a time to one host (host:port)."""

    def __init__(self, per_host: int):
        self.per_host = per_host
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.BoundedSemaphore] = {}

    def __call__(self, url: str) -> threading.BoundedSemaphore:
        host = urlsplit(url).netloc.lower()
        with self._lock:
            return self._hosts.setdefault(host, threading.BoundedSemaphore(self.per_host))


def get(url: str, timeout: float, max_bytes: int) -> bytes:
    """The body of one GET, read within `timeout` seconds in all and at most `max_bytes`; else _Failed."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise _Failed(TOO_LARGE, False, f"Content-Length {length}")
            chunks, size = [], 0
            while chunk := resp.read1(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise _Failed(TOO_LARGE, False, f"more than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise _Failed(TIMED_OUT, True, f"not read within {timeout:g} s")
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as err:
        err.close()
        raise _http_failure(err) from None
    except urllib.error.URLError as err:
        raise _network_failure(err.reason) from None
    except (OSError, http.client.HTTPException) as err:  # a timeout or reset while reading, a bad status line
        raise _network_failure(err) from None
    except ValueError as err:  # unknown URL type, control characters, a bad port
        raise _Failed(INVALID_URL, False, str(err)) from None


def _http_failure(err: urllib.error.HTTPError) -> _Failed:
    code = err.code
    phrase = http.client.responses.get(code, "").lower()  # the standard words, not whatever the server sent
    reason = NOT_FOUND if code == 404 else f"{code} {phrase}".strip()
    transient = code in (408, 429) or code >= 500
    retry_after = (err.headers.get("Retry-After", "") if err.headers else "").strip()
    wait = min(float(retry_after), MAX_WAIT) if retry_after.isdigit() else 0.0
    return _Failed(reason, transient, "", wait)


def _network_failure(reason) -> _Failed:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return _Failed(TIMED_OUT, True, str(reason) or "timed out")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return _Failed(TLS, False, str(reason))
    if isinstance(reason, str):  # urllib's own words: 'no host given', 'unknown url type'
        return _Failed(INVALID_URL, False, reason)
    return _Failed(CONNECTION, True, str(reason) or type(reason).__name__)


def fetch(url: str, folder: Path, limits: Limits, gate: HostGate, stop: threading.Event | None = None) -> Outcome:
    """Download one URL (retrying transient failures with backoff) and store it; never raises for the network."""
    stop = stop or threading.Event()
    failure = _Failed(CONNECTION, True, "not tried")
    for attempt in range(limits.retries + 1):
        if attempt:
            delay = max(min(limits.backoff * 2 ** (attempt - 1), MAX_WAIT), failure.wait)
            if stop.wait(delay):
                break
        if stop.is_set():
            break
        try:
            with gate(url):
                data = get(url, limits.timeout, limits.max_bytes)
        except _Failed as err:
            failure = err
            if not err.transient:
                break
            continue
        ext = image_type(data)
        if ext is None:
            return Outcome(url, failed=NOT_AN_IMAGE, detail=_first_bytes(data))
        return Outcome(url, file=store(folder, data, ext), size=len(data))
    return Outcome(url, failed=failure.reason, transient=failure.transient, detail=failure.detail, max_bytes=limits.max_bytes)


def _first_bytes(data: bytes) -> str:
    return f"{len(data)} bytes starting {data[:16]!r}" if data else "an empty body"


# ---- the manifest -------------------------------------------------------------------------------------------


def read_manifest(path: Path) -> tuple[dict[str, dict], int]:
    """{url: its last record} of a manifest, and the number of unreadable lines (an interrupted write) skipped."""
    records, broken = {}, 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    broken += 1
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("url"), str):
                    records[rec["url"]] = rec
                else:
                    broken += 1
    except OSError as err:
        raise bad_input(f"{path}: cannot read ({err.strerror}); remove it to start over") from err
    return records, broken


def reusable(rec: dict, folder: Path, limits: Limits) -> Outcome | None:
    """The outcome a manifest record stands for when it need not be fetched again, else None: a file that
    is still there, or a lasting failure (a too-large one only under a limit no higher than it was)."""
    url = rec["url"]
    name = rec.get("file")
    if isinstance(name, str):
        return Outcome(url, file=name, size=int(rec.get("bytes", 0))) if (folder / name).is_file() else None
    reason = rec.get("failed")
    if not isinstance(reason, str) or rec.get("transient", True):
        return None
    if reason == TOO_LARGE and limits.max_bytes > int(rec.get("max_bytes", 0)):
        return None
    return Outcome(url, failed=reason, detail=str(rec.get("detail", "")), max_bytes=int(rec.get("max_bytes", 0)))


class ManifestWriter:
    """Appends one JSON line per outcome, flushed at once, so that a killed run keeps what it fetched."""

    def __init__(self, path: Path):
        self.path = path
        try:
            ends_cut = path.is_file() and path.stat().st_size and _last_byte(path) != b"\n"
            self._f = open(path, "a", encoding="utf-8")
            if ends_cut:  # a line cut by a kill: end it, so that the next record stands on its own line
                self._f.write("\n")
        except OSError as err:
            from mmrec_cli.io.atomic import io_error

            raise io_error(err, path) from err

    def write(self, outcome: Outcome) -> None:
        self._f.write(json.dumps(outcome.record()) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def check_folder(folder: Path, resume: bool) -> None:
    """Fail before any work: the folder is a file (exit 6), or it holds the manifest of an earlier run and
    `resume` is not given (a usage error: reuse those downloads or remove them)."""
    manifest = folder / MANIFEST
    if folder.exists() and not folder.is_dir():
        raise MmrecError(f"cannot write {folder}: Not a directory; give a folder to --dir", IO_FAILURE)
    if manifest.exists() and not resume:
        raise usage(f"{manifest}: left by an earlier run; pass --resume to reuse its downloads, or remove it to start over")


def open_folder(folder: Path, resume: bool, note: Callable[[str], None]) -> dict[str, dict]:
    """Make the folder; return the manifest's records to resume from ({} without `resume`)."""
    check_folder(folder, resume)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        from mmrec_cli.io.atomic import io_error

        raise io_error(err, folder) from err
    manifest = folder / MANIFEST
    if not manifest.exists():
        if resume:
            note(f"nothing to resume in {folder} (no {MANIFEST}); starting from the beginning")
        return {}
    records, broken = read_manifest(manifest)
    if broken:
        note(f"{manifest}: {broken} unreadable lines skipped (an interrupted write); their URLs are fetched again")
    return records


# ---- many URLs ----------------------------------------------------------------------------------------------


def by_host(urls: Iterable[str]) -> list[str]:
    """The URLs with hosts taken in turn (a, b, c, a, b, ...), so that threads are not all kept by one host."""
    queues: dict[str, list[str]] = {}
    for url in urls:
        queues.setdefault(urlsplit(url).netloc.lower(), []).append(url)
    order, lists = [], list(queues.values())
    for i in range(max((len(q) for q in lists), default=0)):
        order.extend(q[i] for q in lists if i < len(q))
    return order


def download(urls: list[str], folder: Path, limits: Limits, known: dict[str, dict], hooks: Hooks) -> tuple[dict[str, Outcome], set[str]]:
    """Fetch every URL that `known` (manifest records) does not settle; log each outcome to the manifest as it
    comes. Returns ({url: outcome} for all URLs, the URLs settled by `known`). Ctrl-C stops the threads."""
    outcomes: dict[str, Outcome] = {}
    for url in urls:
        if url in known and (done := reusable(known[url], folder, limits)) is not None:
            outcomes[url] = done
    reused = set(outcomes)
    todo = by_host(u for u in urls if u not in outcomes)
    if not todo:
        return outcomes, reused
    gate, stop = HostGate(limits.per_host), threading.Event()
    log = ManifestWriter(folder / MANIFEST)
    pool = ThreadPoolExecutor(max_workers=min(limits.jobs, len(todo)), thread_name_prefix="mmrec-fetch")
    try:
        with hooks.bar("images", len(todo), "URLs") as advance:
            pending: set[Future] = {pool.submit(fetch, url, folder, limits, gate, stop) for url in todo}
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    outcome = future.result()
                    log.write(outcome)
                    outcomes[outcome.url] = outcome
                    advance(1)
    except BaseException:
        stop.set()  # Ctrl-C, a full disk: downloads in flight end at their next step, queued ones never start
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        log.close()
    return outcomes, reused


# ---- the items ----------------------------------------------------------------------------------------------


def image_key(obj: dict) -> str | None:
    """The key that holds an item's images ('images', else the singular 'image' that items files may use)."""
    return "images" if "images" in obj else "image" if "image" in obj else None


def entries(obj: dict) -> list[str]:
    key = image_key(obj)
    value = obj.get(key) if key else None
    return [value] if isinstance(value, str) else list(value or [])


def relative_to_output(folder: Path, output: str) -> Callable[[str], str]:
    """name under the folder -> the path that names it from the output file's folder ('/'-separated)."""
    base = Path.cwd() if output == "-" else Path(output).resolve().parent
    try:
        prefix = Path(os.path.relpath(folder.resolve(), base)).as_posix()
    except ValueError:  # another drive (Windows): no relative path leads there
        prefix = folder.resolve().as_posix()
    return lambda name: name if prefix == "." else f"{prefix}/{name}"


def fetch_images(items_path: str, folder: str | os.PathLike, output: str, limits: Limits | None = None, resume: bool = False, hooks: Hooks | None = None) -> Report:
    """Download the http(s) images of an items JSONL ('-': standard input) into `folder` and write the items
    to `output` ('-': standard output) with each fetched URL replaced by its local path, relative to the
    output's folder, and each failed URL dropped; local paths stay as they are. Returns the report (the
    caller prints `Report.lines`). Failed downloads are reported, never raised."""
    from mmrec_cli.data.records import read_items
    from mmrec_cli.io.atomic import check_distinct, check_writable
    from mmrec_cli.io.jsonl import jsonl_writer, read_jsonl, read_stdin

    limits = limits or Limits()
    hooks = hooks or Hooks()
    limits.check()
    folder = Path(folder)
    check_writable(output)
    check_distinct({"-o": output}, {"ITEMS": items_path, "--dir manifest": str(folder / MANIFEST)})
    check_folder(folder, resume)
    data = read_stdin() if items_path == "-" else None
    read_items(items_path, data)  # the items file's own checks: ids, duplicates, the type of 'images'
    rows = list(read_jsonl(items_path, data))
    where: dict[str, str] = {}
    for lineno, obj in rows:
        for entry in entries(obj):
            if is_url(entry):
                where.setdefault(entry, f"{items_path}:{lineno} '{entry}'")
    known = open_folder(folder, resume, hooks.note)
    outcomes, reused = download(list(where), folder, limits, known, hooks)
    report = _report(where, outcomes, reused)
    local = relative_to_output(folder, output)
    if local("x").startswith("../") or Path(local("x")).is_absolute():
        hooks.note(f"note: {folder} is not inside the folder of {output}; `mmrec extract` reads the images with --allow-outside-root")
    with jsonl_writer(output) as write:
        for _, obj in rows:
            key, kept = image_key(obj), []
            for entry in entries(obj):
                if not is_url(entry):
                    kept.append(entry)
                elif outcomes[entry].file is not None:
                    kept.append(local(outcomes[entry].file))
                else:
                    report.dropped += 1
            if key:
                obj = {**obj, key: kept}
            report.images += len(kept)
            report.items += 1
            write(obj)
    report.outcomes = outcomes
    return report


def _report(where: dict[str, str], outcomes: dict[str, Outcome], reused: set[str]) -> Report:
    """Counts by distinct URL, in the items file's order (so the first example of each failure is the first
    in the file, whatever order the threads finished in)."""
    report = Report()
    files = set()
    for url, example in where.items():
        outcome = outcomes[url]
        if outcome.failed is not None:
            report.failures.add(outcome.failed, example)
        elif url in reused:
            report.present += 1
        else:
            report.fetched += 1
            files.add(outcome.file)
    report.files = len(files)
    return report
