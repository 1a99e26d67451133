"""`mmrec images`: item images fetched from URLs against a local HTTP server (127.0.0.1, never the internet)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _cli import cli, error_line, run

from mmrec_cli.cli.app import app
from mmrec_cli.features import download as D
from mmrec_cli.features.images import resolve


def picture(fmt: str, color: tuple) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (2, 2), color).save(buf, fmt)
    return buf.getvalue()


PNG = picture("PNG", (255, 0, 0))
JPEG = picture("JPEG", (0, 0, 255))
FLAKY = picture("PNG", (0, 255, 0))


class Server:
    """Serves ROUTES; counts requests per path and the most requests it held at once (slow ones excluded)."""

    def __init__(self):
        self.hits: dict[str, int] = {}
        self.active = self.most = 0
        self.lock, self.release = threading.Lock(), threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with server.lock:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                    nth = server.hits[self.path]
                    server.active += 1
                    server.most = max(server.most, server.active)
                try:
                    server.serve(self, nth)
                finally:
                    with server.lock:
                        server.active -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None  # a client that timed out and left
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, h: BaseHTTPRequestHandler, nth: int) -> None:
        # HTTP/1.0 without Content-Length: the body ends when the handler closes the connection
        path = h.path
        if path == "/slow.png":
            with self.lock:
                self.active -= 1  # it waits for the test's end, outliving the client's timeout
            try:
                self.release.wait(10)
            finally:
                with self.lock:
                    self.active += 1
            return self.send(h, 200, "image/png", PNG)
        if path.startswith("/wait/"):  # the per-host test: long enough to overlap if the limit let it
            time.sleep(0.05)
            return self.send(h, 200, "image/png", picture("PNG", (int(path[6:]), 0, 0)))
        if path in ("/a.png", "/same-as-a"):
            return self.send(h, 200, "image/png", PNG)
        if path == "/b.jpg":
            return self.send(h, 200, "image/jpeg", JPEG)
        if path == "/flaky.png":
            return self.send(h, 500, "text/plain", b"busy") if nth == 1 else self.send(h, 200, "image/png", FLAKY)
        if path == "/busy.png":  # 429 twice, then the picture
            if nth <= 2:
                h.send_response(429)
                h.send_header("Retry-After", "0")
                h.end_headers()
                return None
            return self.send(h, 200, "image/png", PNG)
        if path == "/huge.png":
            return self.send(h, 200, "image/png", PNG + b"\0" * 5000)
        if path == "/page.html":
            return self.send(h, 200, "image/jpeg", b"<!doctype html><html>sign in</html>")
        return self.send(h, 404, "text/plain", b"no")

    @staticmethod
    def send(h: BaseHTTPRequestHandler, code: int, kind: str, body: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", kind)
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    s = Server()
    yield s
    s.close()


def name_of(data: bytes, ext: str) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"{digest[:2]}/{digest}.{ext}"


def write_items(path: Path, base: str) -> None:
    items = [
        {"item_id": "i1", "text": "red", "images": [f"{base}/a.png", "local/kept.jpg", f"{base}/b.jpg"]},
        {"item_id": "i2", "text": ["copy", "of red"], "images": [f"{base}/same-as-a", f"{base}/missing.png"]},
        {"item_id": "i3", "text": "bad", "images": [f"{base}/page.html", f"{base}/huge.png", f"{base}/slow.png"], "price": 3},
        {"item_id": "i4", "text": "flaky", "image": f"{base}/flaky.png"},
        {"item_id": "i5", "text": "none"},
        {"item_id": "i6", "text": "again", "images": [f"{base}/a.png"]},
    ]
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")


FAST = ["--timeout", "0.8", "--retries", "1", "--max-bytes", "1000"]


def test_fetches_reports_failures_and_rewrites_the_items(server, tmp_path):
    items, out, imgs = tmp_path / "items.jsonl", tmp_path / "local.jsonl", tmp_path / "imgs"
    write_items(items, server.base)
    r = run("images", items, "--dir", imgs, "-o", out, *FAST)
    assert r.exit_code == 0, r.output
    b = server.base
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"fetched: 4 URLs into {imgs} (3 distinct images)",
        f"failed: 4 URLs, dropped from the items: 1 404 not found (first: {items}:2 '{b}/missing.png'); "
        f"1 not an image (first: {items}:3 '{b}/page.html'); 1 too large (over --max-bytes) (first: {items}:3 '{b}/huge.png'); "
        f"1 timed out (first: {items}:3 '{b}/slow.png')",
        f"wrote {out}: 6 items, 6 images (4 failed URL entries dropped)",
    ]
    png, jpg, flaky = name_of(PNG, "png"), name_of(JPEG, "jpg"), name_of(FLAKY, "png")
    assert sorted(str(p.relative_to(imgs).as_posix()) for p in imgs.rglob("*") if p.is_file()) == sorted([png, jpg, flaky, "manifest.jsonl"])
    assert (imgs / png).read_bytes() == PNG and (imgs / jpg).read_bytes() == JPEG
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert got == [
        {"item_id": "i1", "text": "red", "images": [f"imgs/{png}", "local/kept.jpg", f"imgs/{jpg}"]},
        {"item_id": "i2", "text": ["copy", "of red"], "images": [f"imgs/{png}"]},
        {"item_id": "i3", "text": "bad", "images": [], "price": 3},
        {"item_id": "i4", "text": "flaky", "image": [f"imgs/{flaky}"]},
        {"item_id": "i5", "text": "none"},
        {"item_id": "i6", "text": "again", "images": [f"imgs/{png}"]},
    ]
    manifest = {}
    for line in (imgs / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        manifest[rec.pop("url").removeprefix(b)] = rec
    assert {k: v.get("file", v.get("failed")) for k, v in manifest.items()} == {
        "/a.png": png, "/b.jpg": jpg, "/same-as-a": png, "/flaky.png": flaky, "/missing.png": "404 not found",
        "/page.html": "not an image", "/huge.png": "too large", "/slow.png": "timed out",
    }
    assert manifest["/a.png"] == {"file": png, "bytes": len(PNG)}
    assert manifest["/huge.png"] == {"failed": "too large", "transient": False, "detail": "more than 1000 bytes", "max_bytes": 1000}
    assert manifest["/slow.png"]["transient"] is True and manifest["/missing.png"]["transient"] is False
    # each URL once, however many items name it; the 500 retried once, the timeout tried 1 + --retries 1 times
    assert server.hits == {"/a.png": 1, "/b.jpg": 1, "/same-as-a": 1, "/missing.png": 1, "/page.html": 1, "/huge.png": 1, "/flaky.png": 2, "/slow.png": 2}
    # `mmrec extract --image clip local.jsonl` resolves them from its default image root, the file's folder
    for path in (f"imgs/{png}", f"imgs/{jpg}", f"imgs/{flaky}"):
        assert resolve(tmp_path, path, False) == (tmp_path / path, None)


def test_resume_requests_only_what_failed_for_a_while(server, tmp_path):
    items, imgs = tmp_path / "items.jsonl", tmp_path / "imgs"
    write_items(items, server.base)
    assert run("images", items, "--dir", imgs, "-o", tmp_path / "one.jsonl", *FAST).exit_code == 0
    first = dict(server.hits)

    again = run("images", items, "--dir", imgs, "-o", tmp_path / "two.jsonl", *FAST)
    assert again.exit_code == 2
    assert error_line(again) == f"error: {imgs / 'manifest.jsonl'}: left by an earlier run; pass --resume to reuse its downloads, or remove it to start over"
    assert server.hits == first and not (tmp_path / "two.jsonl").exists()

    server.release.set()  # the slow URL answers now: a timeout is tried again, a 404 is not
    r = run("images", items, "--dir", imgs, "-o", tmp_path / "two.jsonl", *FAST, "--resume")
    assert r.exit_code == 0, r.output
    b = server.base
    assert r.stderr.splitlines() == [
        f"fetched: 1 URLs into {imgs} (1 distinct images)",
        "already present: 4 URLs (fetched by an earlier run, manifest.jsonl)",
        f"failed: 3 URLs, dropped from the items: 1 404 not found (first: {items}:2 '{b}/missing.png'); "
        f"1 not an image (first: {items}:3 '{b}/page.html'); 1 too large (over --max-bytes) (first: {items}:3 '{b}/huge.png')",
        f"wrote {tmp_path / 'two.jsonl'}: 6 items, 7 images (3 failed URL entries dropped)",
    ]
    assert server.hits == {**first, "/slow.png": first["/slow.png"] + 1}
    i3 = json.loads((tmp_path / "two.jsonl").read_text(encoding="utf-8").splitlines()[2])
    assert i3["images"] == [f"imgs/{name_of(PNG, 'png')}"]

    # a higher --max-bytes tries the too-large image again; everything else stays settled
    r = run("images", items, "--dir", imgs, "-o", tmp_path / "three.jsonl", "--max-bytes", "100000", "--resume")
    assert r.exit_code == 0, r.output
    assert server.hits == {**first, "/slow.png": first["/slow.png"] + 1, "/huge.png": 2}
    assert r.stderr.splitlines()[:2] == [f"fetched: 1 URLs into {imgs} (1 distinct images)", "already present: 5 URLs (fetched by an earlier run, manifest.jsonl)"]


def test_a_removed_file_and_a_cut_manifest_line_are_fetched_again(server, tmp_path):
    items, imgs = tmp_path / "items.jsonl", tmp_path / "imgs"
    items.write_text(json.dumps({"item_id": "i1", "images": [f"{server.base}/a.png", f"{server.base}/b.jpg"]}) + "\n", encoding="utf-8")
    assert run("images", items, "--dir", imgs, "-o", tmp_path / "one.jsonl").exit_code == 0
    (imgs / name_of(PNG, "png")).unlink()
    with open(imgs / "manifest.jsonl", "a", encoding="utf-8") as f:
        f.write('{"url": "http://cut')  # a run killed mid-line
    r = run("images", items, "--dir", imgs, "-o", tmp_path / "two.jsonl", "--resume")
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[:3] == [
        f"{imgs / 'manifest.jsonl'}: 1 unreadable lines skipped (an interrupted write); their URLs are fetched again",
        f"fetched: 1 URLs into {imgs} (1 distinct images)",
        "already present: 1 URLs (fetched by an earlier run, manifest.jsonl)",
    ]
    assert server.hits == {"/a.png": 2, "/b.jpg": 1}
    assert (imgs / name_of(PNG, "png")).read_bytes() == PNG
    assert D.read_manifest(imgs / "manifest.jsonl")[1] == 1


def test_at_most_per_host_requests_at_once(server, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"item_id": f"i{n}", "images": [f"{server.base}/wait/{n}"]}) + "\n" for n in range(8)), encoding="utf-8")
    r = run("images", items, "--dir", tmp_path / "imgs", "-o", tmp_path / "out.jsonl", "--jobs", "4", "--per-host", "1")
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[0] == f"fetched: 8 URLs into {tmp_path / 'imgs'} (8 distinct images)"
    assert server.most == 1 and len(server.hits) == 8


def test_standard_input_to_standard_output_with_paths_from_the_current_folder(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = json.dumps({"item_id": "i1", "images": [f"{server.base}/b.jpg", "x.png"]}) + "\n"
    r = cli.invoke(app, ["images", "-", "--dir", "cache/imgs", "-o", "-"], input=line)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"item_id": "i1", "images": [f"cache/imgs/{name_of(JPEG, 'jpg')}", "x.png"]}
    assert r.stderr.splitlines()[-1] == "wrote standard output: 1 items, 2 images (0 failed URL entries dropped)"


def test_a_folder_outside_the_output_folder_is_noted(server, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"item_id": "i1", "images": [f"{server.base}/b.jpg"]}) + "\n", encoding="utf-8")
    r = run("images", items, "--dir", tmp_path / "imgs", "-o", tmp_path / "sub" / "out.jsonl")
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[0] == f"note: {tmp_path / 'imgs'} is not inside the folder of {tmp_path / 'sub' / 'out.jsonl'}; `mmrec extract` reads the images with --allow-outside-root"
    jpg = f"../imgs/{name_of(JPEG, 'jpg')}"
    assert json.loads((tmp_path / "sub" / "out.jsonl").read_text(encoding="utf-8"))["images"] == [jpg]
    assert resolve(tmp_path / "sub", jpg, True)[1] is None and resolve(tmp_path / "sub", jpg, False) == (None, "outside")


def test_bad_usage_and_input_fail_in_one_line_before_any_request(server, tmp_path):
    items = tmp_path / "items.jsonl"
    write_items(items, server.base)
    r = run("images", items, "--dir", tmp_path / "imgs", "-o", items)
    assert r.exit_code == 6
    assert error_line(r) == f"error: -o {items} is also the ITEMS input; write to another file"
    r = run("images", tmp_path / "nope.jsonl", "--dir", tmp_path / "imgs", "-o", tmp_path / "out.jsonl")
    assert r.exit_code == 4 and error_line(r) == f"error: {tmp_path / 'nope.jsonl'}: no such file; check the path"
    r = run("images", items, "--dir", tmp_path / "imgs", "-o", tmp_path / "out.jsonl", "--jobs", "0")
    assert r.exit_code == 2 and error_line(r) == "error: --jobs: 0 is out of range; use 1 or more"
    r = run("images", items, "--dir", tmp_path / "imgs", "-o", tmp_path / "out.jsonl", "--timeout", "0")
    assert r.exit_code == 2 and error_line(r) == "error: --timeout: 0.0 is out of range; use a number of seconds above 0, e.g. 30"
    (tmp_path / "bad.jsonl").write_text('{"item_id": "x", "images": 3}\n', encoding="utf-8")
    r = run("images", tmp_path / "bad.jsonl", "--dir", tmp_path / "imgs", "-o", tmp_path / "out.jsonl")
    assert r.exit_code == 3 and error_line(r) == f"error: {tmp_path / 'bad.jsonl'}:1: 'images' must be a path or a list of paths"
    (tmp_path / "afile").write_text("", encoding="utf-8")
    r = run("images", items, "--dir", tmp_path / "afile", "-o", tmp_path / "out.jsonl")
    assert r.exit_code == 6 and error_line(r) == f"error: cannot write {tmp_path / 'afile'}: Not a directory; give a folder to --dir"
    assert server.hits == {} and not (tmp_path / "imgs").exists() and not (tmp_path / "out.jsonl").exists()


def test_from_python_429_is_retried_and_retries_run_out(server, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"item_id": "i1", "images": [f"{server.base}/busy.png", f"{server.base}/gone"]}) + "\n", encoding="utf-8")
    notes = []
    report = D.fetch_images(str(items), tmp_path / "imgs", str(tmp_path / "out.jsonl"), D.Limits(retries=1, backoff=0.01), hooks=D.Hooks(note=notes.append))
    assert (report.fetched, report.failures.summary()) == (0, f"1 429 too many requests (first: {items}:1 '{server.base}/busy.png'); 1 404 not found (first: {items}:1 '{server.base}/gone')")
    assert report.outcomes[f"{server.base}/busy.png"].transient and notes == []
    report = D.fetch_images(str(items), tmp_path / "imgs", str(tmp_path / "out.jsonl"), D.Limits(retries=1, backoff=0.01), resume=True)
    assert (report.fetched, report.files, report.present, report.images, report.dropped) == (1, 1, 0, 1, 1)
    assert server.hits == {"/busy.png": 3, "/gone": 1}


def test_image_types_come_from_the_bytes():
    assert D.image_type(PNG) == "png" and D.image_type(JPEG) == "jpg"
    assert D.image_type(picture("GIF", (1, 2, 3))) == "gif" and D.image_type(picture("WEBP", (1, 2, 3))) == "webp"
    assert D.image_type(picture("BMP", (1, 2, 3))) == "bmp" and D.image_type(picture("TIFF", (1, 2, 3))) == "tif"
    assert D.image_type(b"<html>") is None and D.image_type(b"") is None and D.image_type(b"plain text, no picture") is None
    assert D.content_name(PNG, "png") == name_of(PNG, "png")
    assert [D.is_url(s) for s in ("HTTPS://x/a.jpg", "http://x", "ftp://x", "a/http://x", "img.jpg")] == [True, True, False, False, False]
    assert D.by_host(["http://a/1", "http://a/2", "http://a/3", "http://b/1", "http://c/1"]) == ["http://a/1", "http://b/1", "http://c/1", "http://a/2", "http://a/3"]
