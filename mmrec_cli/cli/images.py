"""mmrec images ITEMS.jsonl --dir FOLDER -o ITEMS_LOCAL.jsonl: fetch the images items name by URL."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import handle_errors, progress, say


@handle_errors
def images(
    items: str = typer.Argument(..., help="Items JSONL (item_id, text, images), e.g. from `mmrec prepare --items-out`; - reads standard input."),
    folder: Path = typer.Option(..., "--dir", help="Folder the images are saved into, named by content (ab/<sha256>.jpg), with manifest.jsonl: each URL's file or failure."),
    output: str = typer.Option(..., "-o", "--output", help="Items JSONL to write: fetched URLs become paths relative to its folder (the default image root of `mmrec extract`), failed URLs are dropped; - writes standard output."),
    jobs: int = typer.Option(4, "--jobs", help="Downloads at a time (threads)."),
    retries: int = typer.Option(3, "--retries", help="Retries of a URL after a connection error, a timeout, HTTP 408, 429 or 5xx, waiting 0.5 s, 1 s, 2 s, ... (or as Retry-After says; at most 60 s)."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds per request, connecting and reading the whole image."),
    max_bytes: int = typer.Option(20_000_000, "--max-bytes", help="Stop reading an image larger than this many bytes; it is counted as too large."),
    per_host: int = typer.Option(2, "--per-host", help="Requests at a time to one host."),
    resume: bool = typer.Option(False, "--resume", help="Continue from FOLDER/manifest.jsonl: fetched URLs and lasting failures (404, not an image, too large) are not requested again; timeouts, connection errors, 408, 429 and 5xx are."),
) -> None:
    """Download the images that items name by http(s) URL into a folder, and write the items with local paths (resumable; a summary of what failed on stderr)."""
    from mmrec_cli.features.download import Hooks, Limits, fetch_images

    limits = Limits(jobs=jobs, retries=retries, timeout=timeout, max_bytes=max_bytes, per_host=per_host)
    report = fetch_images(items, folder, output, limits, resume, Hooks(note=say, bar=progress))
    for line in report.lines(str(folder), output):
        say(line)

