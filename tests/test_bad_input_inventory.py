"""Bad input for every subcommand, in one table: each case runs in-process (CliRunner) and must fail with its
own exit code, exactly one line on stderr naming the problem (after the notes of the work done, for a failure
that comes once the work is done: a full disk, SIGTERM), no traceback, nothing on stdout, no file left
in the output folder (no output, temporary file, checkpoint or .partial folder) and every input file unchanged
byte for byte (an output that names an input must be refused before it is written).

CASES rows are (command, case name, argv builder, expected exit code, expected fragment of the stderr line).
A builder gets an `Fx`: the shared inputs (`fx.inp`), a scratch folder for case-specific inputs
(`fx.write`) and the empty output folder (`fx.o(name)`). `scripts/bad_input_inventory.py` prints the
number of cases per subcommand.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

# ---- shared inputs ------------------------------------------------------------------------------------------


def build_inputs(folder: Path) -> SimpleNamespace:
    """Tiny valid artifacts (dataset, features, a trained SASRec) and broken variants of them."""
    from conftest import tiny_sequences
    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app
    from mmrec_cli.data import dataset as D
    from mmrec_cli.io import artifacts
    from mmrec_cli.io import feature_file as FE

    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"i{i}" for i in range(20)]
    p = SimpleNamespace(**{k: str(folder / f"{k}.safetensors") for k in ("ds", "ds2", "feats", "nan_feats", "few_feats", "model", "bare", "truncated", "future")})
    for path, seed in ((p.ds, 0), (p.ds2, 1)):
        seqs = tiny_sequences(seed=seed)
        D.save(D.from_sequences(seqs, ids, [f"u{u}" for u in range(len(seqs))]), path, {"command": "test"}, {}, {})
    g = np.random.default_rng(0)
    feats = {"text": g.standard_normal((20, 12)).astype("f4"), "image": g.standard_normal((20, 12)).astype("f4")}
    encoders = {"text": {"source": "test"}, "image": {"source": "test-image"}}
    FE.save(p.feats, feats, ids, "test", {}, {}, encoders)
    FE.save(p.few_feats, {k: v[:10] for k, v in feats.items()}, ids[:10], "test", {}, {}, encoders)
    nan = {k: v.copy() for k, v in feats.items()}
    nan["text"][3, 5] = np.nan  # written past FE.save, which refuses NaN
    artifacts.save(p.nan_feats, nan, "features", {"item_ids": ids, "item_fingerprint": artifacts.fingerprint_strings(ids), "encoders": encoders, "modalities": ["image", "text"]})
    r = CliRunner().invoke(app, ["finetune", "sasrec", p.ds, "-o", p.model, "--epochs", "1", *ARCH])
    assert r.exit_code == 0, r.output
    p.ckpt = str(folder / "model.safetensors.ckpt")
    _checkpoint(p.ds, p.ckpt)
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, dtype="f4")}, p.bare)  # a safetensors file without mmrec metadata
    Path(p.truncated).write_bytes(Path(p.ds).read_bytes()[:40])
    header = {"__metadata__": {"mmrec": json.dumps({"schema": 99, "kind": "dataset"})}}
    raw = json.dumps(header).encode()
    Path(p.future).write_bytes(struct.pack("<Q", len(raw)) + raw)
    items = folder / "items.jsonl"
    items.write_text("".join(json.dumps({"item_id": i, "text": f"steel screw {i}"}) + "\n" for i in ids))
    p.items = str(items)
    p.text = str(folder / "notes.txt")
    Path(p.text).write_text("not an artifact\n")
    p.raw = str(folder / "x.feat1CLS")  # UniSRec-style raw float32 features of the 20 items
    Path(p.raw).write_bytes(np.arange(20 * 4, dtype="<f4").tobytes())
    for k in (0, 1):  # the two shards of `extract --shard k/2`, for `mmrec merge`
        setattr(p, f"shard{k}", str(folder / f"shard{k}.safetensors"))
        r = CliRunner().invoke(app, ["extract", p.items, "--import", f"text={p.raw}", "--shard", f"{k}/2", "-o", getattr(p, f"shard{k}")])
        assert r.exit_code == 0, r.output
    p.missing = str(folder / "missing.safetensors")
    _altered(folder, p)
    return p


ARCH = ["--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.layers=1"]


def _checkpoint(ds_path: str, ckpt: str) -> None:
    """The checkpoint of a 2-epoch SASRec run with ARCH and the default learning rate, as if killed at its end."""
    from mmrec_cli import models
    from mmrec_cli.data import dataset as D
    from mmrec_cli.training import loading, stages

    ds = D.load(ds_path)
    cfg = loading.resolve_stage(models.get("sasrec"), None, [], {"model.hidden": 8, "model.inner": 16, "model.layers": 1, "train.epochs": 2})
    stages.finetune("sasrec", ds, None, cfg.model, cfg.train, stages.Run(checkpoint=ckpt, identity=loading.run_identity(cfg, ds, None)))


def _altered(folder: Path, p: SimpleNamespace) -> None:
    """Artifacts changed after mmrec wrote them: a header or metadata that is no JSON object, a tensor taken out,
    a features tensor with fewer rows than item ids."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    def resave(src: str, name: str, change, keep_hash: bool = False) -> str:
        """An altered copy; without its tensor hash (as files written before it was recorded), so that the
        checks behind the hash are exercised too."""
        with safe_open(src, "np") as f:
            meta = f.metadata()
        if not keep_hash:
            inner = json.loads(meta["mmrec"])
            inner.pop("tensors_sha256", None)
            meta = {"mmrec": json.dumps(inner, sort_keys=True)}
        save_file(change(load_file(src)), str(folder / name), metadata=meta)
        return str(folder / name)

    p.no_split = resave(p.ds, "no_split.safetensors", lambda t: {k: v for k, v in t.items() if k != "split"})
    p.short_rows = resave(p.feats, "short_rows.safetensors", lambda t: dict(t, text=t["text"][:5]))
    p.no_weight = resave(p.model, "no_weight.safetensors", lambda t: {k: v for k, v in t.items() if k != "item_emb.weight"})
    p.changed_weight = resave(p.model, "changed_weight.safetensors", lambda t: dict(t, **{"item_emb.weight": t["item_emb.weight"] * 2}), keep_hash=True)
    for name, header in (("header_list", b"[]"), ("bad_meta", json.dumps({"__metadata__": {"mmrec": "{oops"}}).encode())):
        setattr(p, name, str(folder / f"{name}.safetensors"))
        Path(getattr(p, name)).write_bytes(struct.pack("<Q", len(header)) + header)


@dataclass
class Fx:
    inp: SimpleNamespace
    scratch: Path
    out: Path
    monkeypatch: pytest.MonkeyPatch
    after_work: bool = False  # a failure once the work is done (disk full, SIGTERM): its notes may come first

    def write(self, name: str, data: str | bytes) -> str:
        path = self.scratch / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def o(self, name: str = "out.safetensors") -> str:
        return str(self.out / name)

    def copy(self, path: str) -> str:
        """A private copy of a shared input, for a case that points an output at its input."""
        return self.write(Path(path).name, Path(path).read_bytes())


def inter(fx: Fx, text: str, name: str = "i.csv") -> str:
    return fx.write(name, text)


def link(fx: Fx, target: str, name: str = "link.csv") -> str:
    """A symbolic link to `target` in the scratch folder."""
    (fx.scratch / name).symlink_to(target)
    return str(fx.scratch / name)


def full_disk(fx: Fx, argv: list) -> list:
    """argv, run on a disk that is full when the finished output is flushed (fsync reports ENOSPC)."""
    import errno

    from mmrec_cli.io import atomic

    def fsync(path: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fx.monkeypatch.setattr(atomic, "_fsync", fsync)
    fx.after_work = True
    return argv


def terminated(fx: Fx, argv: list) -> list:
    """argv, sent SIGTERM (as `kill` does) once its output is written and about to be flushed: the handler of
    `mmrec` (app.main) turns it into an interruption, as in a real process."""
    import signal

    from mmrec_cli.cli import app
    from mmrec_cli.io import atomic

    signal.signal(signal.SIGTERM, app._terminate)  # the test restores the handler
    fx.monkeypatch.setattr(atomic, "_fsync", lambda path: os.kill(os.getpid(), signal.SIGTERM))
    fx.after_work = True
    return argv


def blocked(fx: Fx, name: str = "out.safetensors") -> str:
    """An output path whose folder is a file: it cannot be created or written."""
    return fx.write("blocker", "a file, not a folder\n") + "/" + name


SAME = "is also the {} input; write to another file"  # an output that names an input (exit 6)
SAME_OPTION = "is also the {} file; write to another file"
GOOD_CSV = "user_id,item_id,timestamp\n" + "".join(f"u{u},i{i},{i}\n" for u in range(3) for i in range(4))
TINY = ["--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.layers=1"]
IMAGE_ITEMS = lambda fx: fx.write("items.jsonl", '{"item_id": "a", "images": ["a.png"]}\n')  # noqa: E731
HISTORIES = '{"user_id": "u0", "items": ["i1", "i2"]}\n'
AMAZON = "".join(json.dumps({"reviewerID": "u", "asin": i, "unixReviewTime": t, "overall": 5.0}) + "\n" for t, i in enumerate("abc"))

# ---- the table --------------------------------------------------------------------------------------------

Argv = Callable[[Fx], list]
CASES: list[tuple[str, str, Argv, int, str]] = [
    # prepare
    ("prepare", "missing interactions file", lambda fx: ["prepare", fx.inp.missing, "-o", fx.o()], 4, "missing.safetensors: no such file"),
    ("prepare", "CSV header without item_id", lambda fx: ["prepare", inter(fx, "user_id,item\nu,a\n"), "-o", fx.o()], 3, "i.csv:1: header lacks 'item_id'"),
    ("prepare", "malformed JSONL line", lambda fx: ["prepare", inter(fx, '{"user_id": "u", "item_id": "a"}\n{"user_id": \n', "i.jsonl"), "-o", fx.o()], 3, "i.jsonl:2: malformed JSON"),
    ("prepare", "NaN timestamp", lambda fx: ["prepare", inter(fx, "user_id,item_id,timestamp\nu,a,1\nu,b,nan\n"), "-o", fx.o()], 3, "i.csv:3: timestamp 'nan' is not finite"),
    ("prepare", "empty timestamp cell (was sorted first)", lambda fx: ["prepare", inter(fx, "user_id,item_id,timestamp\nA,i1,10\nA,i2,20\nA,i3,30\nA,i4,\n"), "-o", fx.o()], 3, "i.csv:5: missing timestamp; give every interaction a timestamp, or drop the timestamp column to keep the file's order"),
    ("prepare", "bare CR inside a CSV record", lambda fx: ["prepare", inter(fx, "user_id,item_id\nu\rv,a\n"), "-o", fx.o()], 3, "i.csv:2: unreadable record"),
    ("prepare", "number beyond 4300 digits", lambda fx: ["prepare", inter(fx, '{"user_id": 1' + "0" * 5000 + ', "item_id": "a"}\n', "i.jsonl"), "-o", fx.o()], 3, "i.jsonl:1: unreadable JSON"),
    ("prepare", "a quote never closed", lambda fx: ["prepare", inter(fx, 'user_id,item_id,timestamp\nu1,i1,1\nu1,"i2,2\nu1,i3,3\n'), "-o", fx.o()], 3, "i.csv:3: a quoted field opened on this line is never closed"),
    ("prepare", "--split time without timestamps", lambda fx: ["prepare", inter(fx, "u1\ta b c\n", "s.tsv"), "--format", "sequences", "--split", "time", "-o", fx.o()], 3, "--split time needs timestamps, and the file has none"),
    ("prepare", "wrong --split value", lambda fx: ["prepare", inter(fx, GOOD_CSV), "--split", "random", "-o", fx.o()], 2, "--split must be loo, ratio or time"),
    ("prepare", "item missing from --items", lambda fx: ["prepare", inter(fx, GOOD_CSV), "--items", fx.write("items.jsonl", '{"item_id": "i0"}\n'), "-o", fx.o()], 3, "i.csv:3: unknown item id 'i1'"),
    ("prepare", "user too short for leave-one-out", lambda fx: ["prepare", inter(fx, GOOD_CSV + "u9,i0,1\n"), "-o", fx.o()], 3, "user 'u9' has 1 interaction(s)"),
    ("prepare", "output folder is a file", lambda fx: ["prepare", inter(fx, GOOD_CSV), "-o", blocked(fx)], 6, "blocker/out.safetensors: Not a directory"),
    ("prepare", "--kcore removes everything", lambda fx: ["prepare", inter(fx, GOOD_CSV), "--kcore", "9", "-o", fx.o()], 3, "no users left after --kcore 9; lower --kcore"),
    ("prepare", "output is a folder", lambda fx: ["prepare", inter(fx, GOOD_CSV), "-o", fx.scratch], 6, "scratch: Is a directory; give a file path to -o"),
    ("prepare", "-o - (an artifact to stdout)", lambda fx: ["prepare", inter(fx, GOOD_CSV), "-o", "-"], 2, "-o -: an artifact is a file, not a stream; give a path, e.g. -o out.safetensors"),
    ("prepare", "unknown --format", lambda fx: ["prepare", inter(fx, GOOD_CSV), "--format", "parquet", "-o", fx.o()], 2, "--format must be one of auto, csv, unisrec, sequences, recbole, movielens, amazon2014, amazon2018, amazon2023"),
    ("prepare", "negative --seed of the ratio split", lambda fx: ["prepare", inter(fx, GOOD_CSV), "--split", "ratio", "--seed", "-1", "-o", fx.o()], 2, "--seed: -1 is out of range; use 0 or more"),
    ("prepare", "--features-out for an interactions file", lambda fx: ["prepare", inter(fx, GOOD_CSV), "--features-out", fx.o("f.safetensors"), "-o", fx.o()], 2, "--features-out is for a UniSRec folder; "),
    ("prepare", "-o names the interactions file", lambda fx: ["prepare", (c := inter(fx, GOOD_CSV, "c.csv")), "-o", c], 6, "scratch/c.csv " + SAME.format("SOURCE")),
    ("prepare", "-o names the --items file", lambda fx: ["prepare", inter(fx, GOOD_CSV), "--items", (i := fx.copy(fx.inp.items)), "-o", i], 6, "scratch/items.jsonl " + SAME_OPTION.format("--items")),
    ("prepare", "-o is a link to the interactions file", lambda fx: ["prepare", (c := inter(fx, GOOD_CSV, "c.csv")), "-o", link(fx, c)], 6, "scratch/link.csv " + SAME.format("SOURCE")),
    # prepare: the public formats (tests/test_formats.py)
    ("prepare", "--user-col names no column", lambda fx: ["prepare", inter(fx, "user,item,ts\nu,a,1\n"), "--user-col", "uid", "--item-col", "item", "-o", fx.o()], 3, "i.csv:1: no column 'uid' (--user-col); the header's columns are: user, item, ts"),
    ("prepare", "unparseable timestamp", lambda fx: ["prepare", inter(fx, "user_id,item_id,timestamp\nu,a,2014-03-01\nu,b,2014-13-45\n"), "-o", fx.o()], 3, "i.csv:3: timestamp '2014-13-45' is not a number or an ISO-8601 date"),
    ("prepare", "Amazon metadata of other items", lambda fx: ["prepare", fx.write("r.json", AMAZON), "--items", fx.write("meta.json", '{"asin": "zz", "title": "other"}\n'), "-o", fx.o()], 3, "meta.json: none of its 1 items occur in"),
    ("prepare", "truncated gzip", lambda fx: ["prepare", fx.write("i.csv.gz", gzip.compress(GOOD_CSV.encode() * 40)[:-30]), "-o", fx.o()], 3, "i.csv.gz: the gzip data ends early"),
    ("prepare", "auto cannot tell the format", lambda fx: ["prepare", fx.write("data.txt", "u a 1\nv b 2\n"), "-o", fx.o()], 3, "data.txt: cannot tell the format from its name and first line ('u a 1'); give --format (csv, unisrec, sequences"),
    ("prepare", "--min-rating for sequences", lambda fx: ["prepare", fx.write("s.tsv", "u\ta b c\n"), "--format", "sequences", "--min-rating", "4", "-o", fx.o()], 2, "--min-rating: 'user<TAB>item item ...' lines hold no ratings; drop --min-rating"),
    ("prepare", "disk full while the dataset is written", lambda fx: full_disk(fx, ["prepare", inter(fx, GOOD_CSV), "-o", fx.o()]), 6, "out.safetensors: no space left on device; free some space and run again"),
    ("prepare", "--items-out without --items", lambda fx: ["prepare", inter(fx, GOOD_CSV), "--items-out", fx.o("items.jsonl"), "-o", fx.o()], 2, "--items-out writes the items of --items"),
    # extract
    ("extract", "missing items file", lambda fx: ["extract", fx.inp.missing, "--text", "bert", "-o", fx.o()], 4, "missing.safetensors: no such file"),
    ("extract", "malformed items line", lambda fx: ["extract", fx.write("items.jsonl", '{"item_id": "a"}\n{"item_id": "b", "text": 3}\n'), "--text", "bert", "-o", fx.o()], 3, "items.jsonl:2: 'text' must be a string or a list of strings"),
    ("extract", "wrong --text value", lambda fx: ["extract", fx.inp.items, "--text", "gpt", "-o", fx.o()], 3, "--text gpt: expected bert or clip"),
    ("extract", "nothing to extract", lambda fx: ["extract", fx.inp.items, "-o", fx.o()], 3, "nothing to extract"),
    ("extract", "--dataset is a features artifact", lambda fx: ["extract", fx.inp.items, "--text", "bert", "--dataset", fx.inp.feats, "-o", fx.o()], 5, "expected a dataset artifact, got a features artifact"),
    ("extract", "--import of the wrong size", lambda fx: ["extract", fx.inp.items, "--import", fx.write("x.feat1CLS", np.zeros(7, "<f4").tobytes()), "-o", fx.o()], 3, "x.feat1CLS: 7 floats do not divide into 20 item rows"),
    ("extract", "--merge with NaN features", lambda fx: ["extract", fx.inp.items, "--import", "text=" + fx.write("x.feat1CLS", np.zeros((20, 4), "<f4").tobytes()), "--merge", fx.inp.nan_feats, "-o", fx.o()], 3, "nan_feats.safetensors: feature 'text' holds NaN or inf (row 3)"),
    ("extract", "output folder is a file", lambda fx: ["extract", fx.inp.items, "--text", "bert", "-o", blocked(fx, "f.safetensors")], 6, "blocker/f.safetensors: Not a directory"),
    ("extract", "--import of an empty file", lambda fx: ["extract", fx.inp.items, "--import", "text=" + fx.write("x.feat1CLS", b""), "-o", fx.o()], 3, "x.feat1CLS: empty feature file; give the raw float32 features"),
    ("extract", "--import of one modality twice", lambda fx: ["extract", fx.inp.items, "--import", "text=" + fx.write("a.feat", np.zeros((20, 4), "<f4").tobytes()), "--import", "text=" + fx.write("b.feat", np.ones((20, 4), "<f4").tobytes()), "-o", fx.o()], 3, "--import text=...: the modality name must be new"),
    ("extract", "-o names the items file", lambda fx: ["extract", (i := fx.copy(fx.inp.items)), "--import", "text=" + fx.inp.raw, "-o", i], 6, "scratch/items.jsonl " + SAME.format("ITEMS")),
    ("extract", "no item has a text (was a fully masked file)", lambda fx: ["extract", fx.write("t.jsonl", '{"item_id": "a", "title": "x"}\n'), "--text", "bert", "-o", fx.o()], 3, "no item has a text ('text' field; keys found: item_id, title)"),
    ("extract", "--max-pixels 0 (gave no range)", lambda fx: ["extract", fx.inp.items, "--image", "clip", "--max-pixels", "0", "-o", fx.o()], 2, "--max-pixels: 0 is out of range; use 1 or more"),
    ("extract", "-o names the --merge features", lambda fx: ["extract", fx.inp.items, "--import", "raw=" + fx.inp.raw, "--merge", (f := fx.copy(fx.inp.feats)), "-o", f], 6, "scratch/feats.safetensors " + SAME_OPTION.format("--merge")),
    # caption
    ("caption", "missing items file", lambda fx: ["caption", fx.inp.missing, "-o", fx.o("c.jsonl")], 4, "missing.safetensors: no such file"),
    ("caption", "malformed items line", lambda fx: ["caption", fx.write("items.jsonl", '{"item_id": "a", "images": 5}\n'), "-o", fx.o("c.jsonl")], 3, "items.jsonl:1: 'images' must be a path or a list of paths"),
    ("caption", "wrong --top-n value", lambda fx: ["caption", IMAGE_ITEMS(fx), "--top-n", "0", "-o", fx.o("c.jsonl")], 2, "--top-n: 0 is out of range; use 1 or more"),
    ("caption", "unknown --clip-model", lambda fx: ["caption", IMAGE_ITEMS(fx), "--clip-model", "NoSuchModel", "-o", fx.o("c.jsonl")], 4, "--clip-model NoSuchModel: unknown open_clip model"),
    ("caption", "CLIP weights not available offline", lambda fx: ["caption", IMAGE_ITEMS(fx), "-o", fx.o("c.jsonl")], 4, "cannot be found offline"),
    ("caption", "items without images (no model loaded)", lambda fx: ["caption", fx.inp.items, "-o", fx.o("c.jsonl")], 3, "items.jsonl: no item lists an image ('images' field); nothing to caption"),
    ("caption", "missing --image-root (no model loaded)", lambda fx: ["caption", IMAGE_ITEMS(fx), "--image-root", fx.inp.missing, "-o", fx.o("c.jsonl")], 3, "missing.safetensors: no such folder"),
    ("caption", "output folder is a file", lambda fx: ["caption", IMAGE_ITEMS(fx), "-o", blocked(fx, "c.jsonl")], 6, "blocker/c.jsonl: Not a directory"),
    ("caption", "--vocab-cache folder is a file", lambda fx: ["caption", IMAGE_ITEMS(fx), "--vocab-cache", blocked(fx, "v.safetensors"), "-o", fx.o("c.jsonl")], 6, "blocker is a file; give another --vocab-cache path"),
    ("caption", "-o names the items file", lambda fx: ["caption", (i := IMAGE_ITEMS(fx)), "-o", i], 6, "scratch/items.jsonl " + SAME.format("ITEMS")),
    # cluster
    ("cluster", "missing features", lambda fx: ["cluster", fx.inp.missing, fx.inp.ds, "-o", fx.o()], 4, "missing.safetensors: no such file"),
    ("cluster", "dataset given as features", lambda fx: ["cluster", fx.inp.ds, fx.inp.ds, "-o", fx.o()], 5, "expected a features artifact, got a dataset artifact"),
    ("cluster", "wrong --method value", lambda fx: ["cluster", fx.inp.feats, fx.inp.ds, "--method", "dbscan", "-o", fx.o()], 2, "--method must be dpc-knn or kmeans"),
    ("cluster", "--ratio out of range", lambda fx: ["cluster", fx.inp.feats, fx.inp.ds, "--ratio", "0", "-o", fx.o()], 2, "--ratio: 0.0 is out of range; use a share in (0, 1]"),
    ("cluster", "NaN feature", lambda fx: ["cluster", fx.inp.nan_feats, fx.inp.ds, "-o", fx.o()], 3, "feature 'text' holds NaN or inf (row 3)"),
    ("cluster", "features lack some items", lambda fx: ["cluster", fx.inp.few_feats, fx.inp.ds, "-o", fx.o()], 5, "features lack 10 of the dataset's 20 items"),
    ("cluster", "output folder is a file", lambda fx: ["cluster", fx.inp.feats, fx.inp.ds, "-o", blocked(fx)], 6, "blocker/out.safetensors: Not a directory"),
    ("eval", "model weights changed after writing", lambda fx: ["eval", fx.inp.changed_weight, fx.inp.ds], 5, "changed_weight.safetensors: the tensors (names, dtypes, shapes or values) do not match the hash recorded when it was written; the file was altered, recreate it"),
    ("cluster", "features with fewer rows than item ids", lambda fx: ["cluster", fx.inp.short_rows, fx.inp.ds, "-o", fx.o()], 5, "short_rows.safetensors: feature 'text' has shape (5, 12) for 20 item ids; the file was altered"),
    ("cluster", "--batch-size 0", lambda fx: ["cluster", fx.inp.feats, fx.inp.ds, "--batch-size", "0", "-o", fx.o()], 2, "--batch-size: 0 is out of range; use 1 or more"),
    ("cluster", "-o names the features", lambda fx: ["cluster", (f := fx.copy(fx.inp.feats)), fx.inp.ds, "-o", f], 6, "scratch/feats.safetensors " + SAME.format("FEATURES")),
    # pretrain
    ("pretrain", "model without pre-training", lambda fx: ["pretrain", "sasrec", fx.inp.ds, "-o", fx.o()], 3, "model 'sasrec' has no pre-training stage"),
    ("pretrain", "unknown model", lambda fx: ["pretrain", "caser", fx.inp.ds, "-o", fx.o()], 3, "unknown model 'caser'"),
    ("pretrain", "missing dataset", lambda fx: ["pretrain", "msm4sr", fx.inp.missing, "--features", fx.inp.feats, "-o", fx.o()], 4, "missing.safetensors: no such file"),
    ("pretrain", "one --features for two datasets", lambda fx: ["pretrain", "msm4sr", fx.inp.ds, fx.inp.ds2, "--features", fx.inp.feats, "-o", fx.o()], 3, "give one --features per dataset"),
    ("pretrain", "NaN feature", lambda fx: ["pretrain", "msm4sr", fx.inp.ds, "--features", fx.inp.nan_feats, "-o", fx.o()], 3, "holds NaN or inf"),
    ("pretrain", "unknown --set key", lambda fx: ["pretrain", "msm4sr", fx.inp.ds, "--features", fx.inp.feats, "--set", "model.hiden=8", "-o", fx.o()], 3, "unknown key 'model.hiden'"),
    ("pretrain", "output folder is a file (before training)", lambda fx: ["pretrain", "msm4sr", fx.inp.ds, "--features", fx.inp.feats, "-o", blocked(fx)], 6, "blocker/out.safetensors: Not a directory"),
    ("pretrain", "--checkpoint folder is a file", lambda fx: ["pretrain", "msm4sr", fx.inp.ds, "--features", fx.inp.feats, "--checkpoint", blocked(fx, "p.ckpt"), "-o", fx.o()], 6, "blocker is a file; give another --checkpoint path"),
    ("pretrain", "--max-len 0 (looped forever)", lambda fx: ["pretrain", "msm4sr", fx.inp.ds, "--features", fx.inp.feats, "--max-len", "0", "-o", fx.o()], 2, "config: model.max_len: 0 is out of range; use 1 or more"),
    ("pretrain", "-o names the --features file", lambda fx: ["pretrain", "msm4sr", fx.inp.ds, "--features", (f := fx.copy(fx.inp.feats)), "--epochs", "1", "-o", f], 6, "scratch/feats.safetensors " + SAME_OPTION.format("--features")),
    # finetune
    ("finetune", "missing dataset", lambda fx: ["finetune", "sasrec", fx.inp.missing, "-o", fx.o()], 4, "missing.safetensors: no such file"),
    ("finetune", "features given as dataset", lambda fx: ["finetune", "sasrec", fx.inp.feats, "-o", fx.o()], 5, "expected a dataset artifact, got a features artifact"),
    ("finetune", "truncated dataset", lambda fx: ["finetune", "sasrec", fx.inp.truncated, "-o", fx.o()], 5, "not a safetensors artifact"),
    ("finetune", "malformed --config file", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--config", fx.write("c.json", '{"train": '), "-o", fx.o()], 3, "c.json: cannot parse config"),
    ("finetune", "wrong --set value", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--set", "train.epochs=many", "-o", fx.o()], 3, "train.epochs: 'many' is not a valid int"),
    ("finetune", "wrong --seeds value", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--seeds", "1,two", "-o", fx.o()], 2, "--seeds 1,two: expected integers"),
    ("finetune", "NaN feature", lambda fx: ["finetune", "msm4sr", fx.inp.ds, "--features", fx.inp.nan_feats, "-o", fx.o()], 3, "holds NaN or inf"),
    ("finetune", "multimodal model without --features", lambda fx: ["finetune", "msm4sr", fx.inp.ds, "-o", fx.o()], 3, "pass --features"),
    ("finetune", "--init of another model", lambda fx: ["finetune", "msm4sr", fx.inp.ds, "--features", fx.inp.feats, "--init", fx.inp.model, "-o", fx.o()], 5, "a sasrec model cannot initialise msm4sr"),
    ("finetune", "output folder is a file (before training)", lambda fx: ["finetune", "sasrec", fx.inp.ds, "-o", blocked(fx)], 6, "blocker/out.safetensors: Not a directory; "),
    ("finetune", "--checkpoint folder is a file", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--checkpoint", blocked(fx, "f.ckpt"), "-o", fx.o()], 6, "blocker/f.ckpt: Not a directory"),
    ("finetune", "output is a folder", lambda fx: ["finetune", "sasrec", fx.inp.ds, "-o", fx.scratch], 6, "scratch: Is a directory; give a file path to -o"),
    ("finetune", "-o - (an artifact to stdout)", lambda fx: ["finetune", "sasrec", fx.inp.ds, "-o", "-"], 2, "-o -: an artifact is a file, not a stream"),
    ("finetune", "dataset header not a JSON object", lambda fx: ["finetune", "sasrec", fx.inp.header_list, "-o", fx.o()], 5, "header_list.safetensors: not a safetensors artifact (the header is a JSON list, not an object)"),
    ("finetune", "dataset with corrupt mmrec metadata", lambda fx: ["finetune", "sasrec", fx.inp.bad_meta, "-o", fx.o()], 5, "bad_meta.safetensors: corrupt mmrec metadata (Expecting property name"),
    ("finetune", "dataset without its split tensor", lambda fx: ["finetune", "sasrec", fx.inp.no_split, "-o", fx.o()], 5, "no_split.safetensors: the dataset artifact lacks 'split'; recreate it with `mmrec prepare`"),
    ("finetune", "--epochs 0", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--epochs", "0", "-o", fx.o()], 2, "config: train.epochs: 0 is out of range; use 1 or more"),
    ("finetune", "--batch-size 0", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--batch-size", "0", "-o", fx.o()], 2, "config: train.batch_size: 0 is out of range; use 1 or more"),
    ("finetune", "--lr nan", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--lr", "nan", "-o", fx.o()], 2, "config: train.lr: nan is out of range; use a positive number"),
    ("finetune", "hidden not divisible by heads", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--set", "model.hidden=7", "-o", fx.o()], 3, "config: model.hidden=7 is not divisible by model.heads=2; change one of them"),
    ("finetune", "dropout of 2", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--set", "model.dropout=2", "-o", fx.o()], 2, "config: model.dropout: 2.0 is out of range; use a rate in [0, 1)"),
    ("finetune", "negative init_std (torch's RuntimeError)", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--set", "model.init_std=-1", "-o", fx.o()], 2, "config: model.init_std: -1.0 is out of range; use a finite number, 0 or more"),
    ("finetune", "NaN init_std", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--set", "model.init_std=nan", "-o", fx.o()], 2, "config: model.init_std: nan is out of range; use a finite number, 0 or more"),
    ("finetune", "negative inner width", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--set", "model.inner=-5", "-o", fx.o()], 2, "config: model.inner: -5 is out of range; use 0 or more"),
    ("finetune", "negative layers (trained as 0)", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--epochs", "1", *TINY, "--set", "model.layers=-1", "-o", fx.o()], 2, "config: model.layers: -1 is out of range; use 0 or more"),
    ("finetune", "layers=true (trained one layer)", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--epochs", "1", *TINY, "--set", "model.layers=true", "-o", fx.o()], 3, "config: model.layers: True is not a valid int; use a whole number"),
    ("finetune", "infinite temperature", lambda fx: ["finetune", "msm4sr", fx.inp.ds, "--features", fx.inp.feats, "--set", "model.temperature=inf", "-o", fx.o()], 2, "config: model.temperature: inf is out of range; use a finite number"),
    ("finetune", "a number for a switch", lambda fx: ["finetune", "msm4sr", fx.inp.ds, "--features", fx.inp.feats, "--set", "model.nip=0", "-o", fx.o()], 3, "config: model.nip: 0 is not a valid bool; use true or false"),
    ("pretrain", "negative experts", lambda fx: ["pretrain", "msm4sr", fx.inp.ds, "--features", fx.inp.feats, "--set", "model.experts=-2", "-o", fx.o()], 2, "config: model.experts: -2 is out of range; use 0 or more"),
    ("finetune", "empty --seeds list", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--seeds", ",", "-o", fx.o()], 2, "--seeds ,: expected integers separated by commas, each once"),
    ("finetune", "negative --nproc", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--nproc", "-2", "-o", fx.o()], 3, "--nproc -2: give at least 1 process"),
    ("finetune", "repeated seed", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--seeds", "1,1", "-o", fx.o()], 2, "--seeds 1,1: expected integers separated by commas, each once"),
    ("finetune", "-o names the dataset", lambda fx: ["finetune", "sasrec", (d := fx.copy(fx.inp.ds)), "--epochs", "1", *TINY, "-o", d], 6, "scratch/ds.safetensors " + SAME.format("DATASET")),
    ("finetune", "--checkpoint names the dataset", lambda fx: ["finetune", "sasrec", (d := fx.copy(fx.inp.ds)), "--epochs", "1", *TINY, "--checkpoint", d, "-o", fx.o()], 6, "scratch/ds.safetensors " + SAME.format("DATASET")),
    ("finetune", "-o with --seeds names the dataset", lambda fx: ["finetune", "sasrec", fx.write("ds.seed1.safetensors", Path(fx.inp.ds).read_bytes()), "--epochs", "1", *TINY, "--seeds", "1", "-o", fx.scratch / "ds.safetensors"], 6, "scratch/ds.seed1.safetensors " + SAME.format("DATASET")),
    ("finetune", "--resume of a checkpoint of other settings (trained a hybrid)", lambda fx: ["finetune", "sasrec", fx.inp.ds, *ARCH, "--epochs", "2", "--lr", "0.003", "--checkpoint", fx.inp.ckpt, "--resume", "-o", fx.o()], 5, "was made with config.train.lr = 0.001, this run has 0.003; pass the same settings, or remove"),
    ("finetune", "-o names the --config file", lambda fx: ["finetune", "sasrec", fx.inp.ds, "--config", (c := fx.write("c.json", '{"train": {"epochs": 1}}')), "-o", c], 6, "scratch/c.json " + SAME_OPTION.format("--config")),
    # transfer
    ("transfer", "missing pre-trained model", lambda fx: ["transfer", fx.inp.missing, fx.inp.ds, "-o", fx.o()], 4, "missing.safetensors: no such file"),
    ("transfer", "dataset given as the model", lambda fx: ["transfer", fx.inp.ds, fx.inp.ds, "-o", fx.o()], 5, "expected a model artifact, got a dataset artifact"),
    ("transfer", "no processes (--nproc 0)", lambda fx: ["transfer", fx.inp.model, fx.inp.ds, "--nproc", "0", "-o", fx.o()], 3, "--nproc 0: give at least 1 process"),
    ("transfer", "wrong --mode value", lambda fx: ["transfer", fx.inp.model, fx.inp.ds, "--mode", "zero-shot", "-o", fx.o()], 2, "--mode must be inductive or transductive"),
    ("transfer", "model without a transfer stage", lambda fx: ["transfer", fx.inp.model, fx.inp.ds, "-o", fx.o()], 3, "model 'sasrec' has no transfer stage"),
    ("transfer", "output folder is a file (before loading)", lambda fx: ["transfer", fx.inp.model, fx.inp.ds, "-o", blocked(fx)], 6, "blocker/out.safetensors: Not a directory"),
    ("transfer", "--checkpoint folder is a file", lambda fx: ["transfer", fx.inp.model, fx.inp.ds, "--checkpoint", blocked(fx, "t.ckpt"), "-o", fx.o()], 6, "blocker is a file; give another --checkpoint path"),
    ("transfer", "-o names the pre-trained model", lambda fx: ["transfer", (m := fx.copy(fx.inp.model)), fx.inp.ds, "-o", m], 6, "scratch/model.safetensors " + SAME.format("PRETRAINED")),
    # eval
    ("eval", "one argument", lambda fx: ["eval", fx.inp.model, "-o", fx.o("m.json")], 2, "expected MODEL DATASET, got 1 argument(s)"),
    ("eval", "wrong --split value", lambda fx: ["eval", fx.inp.model, fx.inp.ds, "--split", "train", "-o", fx.o("m.json")], 2, "--split must be valid or test"),
    ("eval", "missing dataset", lambda fx: ["eval", fx.inp.model, fx.inp.missing, "-o", fx.o("m.json")], 4, "missing.safetensors: no such file"),
    ("eval", "model of another dataset", lambda fx: ["eval", fx.inp.model, fx.inp.ds2, "-o", fx.o("m.json")], 5, "the model was trained on dataset"),
    ("eval", "output folder is a file", lambda fx: ["eval", fx.inp.model, fx.inp.ds, "-o", blocked(fx, "m.json")], 6, "blocker/m.json: Not a directory"),
    ("eval", "--rankings folder is a file", lambda fx: ["eval", fx.inp.model, fx.inp.ds, "--rankings", blocked(fx, "r.jsonl"), "-o", fx.o("m.json")], 6, "blocker is a file; give another --rankings path"),
    ("eval", "--report folder is a file", lambda fx: ["eval", "--compare", fx.inp.text, fx.inp.text, "--report", blocked(fx, "r.html"), "-o", fx.o("c.json")], 6, "blocker is a file; give another --report path"),
    ("eval", "dataset given as the model", lambda fx: ["eval", fx.inp.ds, fx.inp.ds, "-o", fx.o("m.json")], 5, "expected a model artifact, got a dataset artifact"),
    ("eval", "--compare of a non-result file", lambda fx: ["eval", "--compare", fx.inp.text, fx.inp.text, "-o", fx.o("c.json")], 3, "notes.txt: not JSON"),
    ("eval", "--probe with NaN feature", lambda fx: ["eval", "--probe", fx.inp.ds, "--features", fx.inp.nan_feats, "-o", fx.o("p.json")], 3, "holds NaN or inf"),
    ("eval", "model missing a weight tensor", lambda fx: ["eval", fx.inp.no_weight, fx.inp.ds, "-o", fx.o("m.json")], 5, "no_weight.safetensors: the weights do not fit the model's recorded config (Error(s) in loading state_dict for Model: Missing key(s)"),
    ("eval", "--ks 0", lambda fx: ["eval", fx.inp.model, fx.inp.ds, "--ks", "0", "-o", fx.o("m.json")], 3, "--ks 0: expected cut-offs of 1 or more separated by commas"),
    ("eval", "negative --chunk (gave wrong metrics)", lambda fx: ["eval", fx.inp.model, fx.inp.ds, "--chunk", "-1", "-o", fx.o("m.json")], 2, "--chunk: -1 is out of range; use 1 or more"),
    ("eval", "--probe features with fewer rows than ids", lambda fx: ["eval", "--probe", fx.inp.ds, "--features", fx.inp.short_rows, "-o", fx.o("p.json")], 5, "feature 'text' has shape (5, 12) for 20 item ids"),
    ("eval", "-o names the dataset", lambda fx: ["eval", fx.inp.model, (d := fx.copy(fx.inp.ds)), "-o", d], 6, "scratch/ds.safetensors " + SAME.format("DATASET")),
    ("eval", "-o names the model", lambda fx: ["eval", (m := fx.copy(fx.inp.model)), fx.inp.ds, "-o", m], 6, "scratch/model.safetensors " + SAME.format("MODEL")),
    ("eval", "--rankings and -o name one file", lambda fx: ["eval", fx.inp.model, fx.inp.ds, "-o", fx.o("r.json"), "--rankings", fx.o("r.json")], 6, "out/r.json is also the -o file; give each output its own file"),
    ("eval", "--probe -o names the --features file", lambda fx: ["eval", "--probe", fx.inp.ds, "--features", (f := fx.copy(fx.inp.feats)), "-o", f], 6, "scratch/feats.safetensors " + SAME_OPTION.format("--features")),
    ("eval", "disk full while the metrics are written", lambda fx: full_disk(fx, ["eval", fx.inp.model, fx.inp.ds, "-o", fx.o("m.json")]), 6, "m.json: no space left on device; free some space and run again"),
    ("eval", "--compare -o names a result file", lambda fx: ["eval", "--compare", (a := fx.write("a.json", "{}")), fx.write("b.json", "{}"), "-o", a], 6, "scratch/a.json " + SAME.format("RESULT")),
    # recommend
    ("images", "missing items file", lambda fx: ["images", fx.scratch / "none.jsonl", "--dir", fx.o("imgs"), "-o", fx.o("local.jsonl")], 4, "no such file"),
    ("images", "--jobs 0", lambda fx: ["images", fx.inp.items, "--jobs", "0", "--dir", fx.o("imgs"), "-o", fx.o("local.jsonl")], 2, "--jobs: 0 is out of range"),
    ("images", "-o names the items file", lambda fx: ["images", (i := fx.copy(fx.inp.items)), "--dir", fx.o("imgs"), "-o", i], 6, "scratch/items.jsonl " + SAME.format("ITEMS")),
    ("recommend", "missing --input file", lambda fx: ["recommend", fx.inp.model, fx.inp.ds, "--input", fx.inp.missing, "-o", fx.o("r.jsonl")], 4, "missing.safetensors: no such file"),
    ("recommend", "malformed history line", lambda fx: ["recommend", fx.inp.model, fx.inp.ds, "--input", fx.write("h.jsonl", HISTORIES + "{oops\n"), "-o", fx.o("r.jsonl")], 3, "h.jsonl:2: malformed JSON"),
    ("recommend", "items not a list", lambda fx: ["recommend", fx.inp.model, fx.inp.ds, "--input", fx.write("h.jsonl", HISTORIES + '{"items": "i1"}\n'), "-o", fx.o("r.jsonl")], 3, 'h.jsonl:2: expected "items": a list'),
    ("recommend", "unknown item with --strict", lambda fx: ["recommend", fx.inp.model, fx.inp.ds, "--strict", "--input", fx.write("h.jsonl", HISTORIES + '{"items": ["zz"]}\n'), "-o", fx.o("r.jsonl")], 3, "h.jsonl:2: unknown item id 'zz'"),
    ("recommend", "output folder is a file", lambda fx: ["recommend", fx.inp.model, fx.inp.ds, "--input", fx.write("h.jsonl", HISTORIES), "-o", blocked(fx, "r.jsonl")], 6, "blocker/r.jsonl: Not a directory"),
    ("recommend", "wrong --top-k value", lambda fx: ["recommend", fx.inp.model, fx.inp.ds, "--top-k", "0", "--input", fx.write("h.jsonl", HISTORIES), "-o", fx.o("r.jsonl")], 2, "--top-k: 0 is out of range; use 1 or more"),
    ("recommend", "model of another dataset", lambda fx: ["recommend", fx.inp.model, fx.inp.ds2, "--input", fx.write("h.jsonl", HISTORIES), "-o", fx.o("r.jsonl")], 5, "the model was trained on dataset"),
    ("recommend", "SIGTERM while -o is written (left its temporary file)", lambda fx: terminated(fx, ["recommend", fx.inp.model, fx.inp.ds, "-i", fx.write("h.jsonl", HISTORIES), "-o", fx.o("r.jsonl")]), 130, "interrupted; outputs were not written"),
    ("recommend", "-o names the --input histories", lambda fx: ["recommend", fx.inp.model, fx.inp.ds, "-i", (h := fx.write("h.jsonl", HISTORIES)), "-o", h], 6, "scratch/h.jsonl " + SAME_OPTION.format("--input")),
    # info
    ("info", "missing file", lambda fx: ["info", fx.inp.missing], 4, "missing.safetensors: no such file"),
    ("info", "a text file", lambda fx: ["info", fx.inp.text], 5, "notes.txt: not a safetensors artifact"),
    ("info", "safetensors without mmrec metadata", lambda fx: ["info", fx.inp.bare], 5, "a safetensors file without mmrec metadata"),
    ("info", "truncated artifact", lambda fx: ["info", fx.inp.truncated], 5, "not a safetensors artifact"),
    ("info", "artifact of a newer schema", lambda fx: ["info", fx.inp.future], 5, "artifact schema 99 is not supported"),
    ("info", "mmrec metadata not JSON", lambda fx: ["info", fx.inp.bad_meta], 5, "bad_meta.safetensors: corrupt mmrec metadata ("),
    # config (prints the resolved settings; writes no file)
    ("config", "unknown model", lambda fx: ["config", "caser"], 3, "unknown model 'caser'; choose one of"),
    ("config", "missing --config file", lambda fx: ["config", "sasrec", "--config", fx.inp.missing], 4, "missing.safetensors: config file not found; check the path"),
    ("config", "a bool for a count", lambda fx: ["config", "sasrec", "--set", "model.layers=true"], 3, "config: model.layers: True is not a valid int; use a whole number"),
    ("config", "negative init_std", lambda fx: ["config", "sasrec", "--set", "model.init_std=-1"], 2, "config: model.init_std: -1.0 is out of range; use a finite number, 0 or more"),
    # merge (joins `extract --shard I/N` outputs)
    ("sweep", "unknown swept key", lambda fx: ["sweep", "sasrec", fx.inp.ds, "--grid", "model.hiden=8,16", "--seeds", "1", "-o", fx.o("sw")], 3, "--grid model.hiden=8,16: config: unknown key 'model.hiden'"),
    ("sweep", "empty --grid value", lambda fx: ["sweep", "sasrec", fx.inp.ds, "--grid", "model.hidden=8,", "--seeds", "1", "-o", fx.o("sw")], 2, "--grid model.hidden=8,: empty value"),
    ("sweep", "--grid and --random together", lambda fx: ["sweep", "sasrec", fx.inp.ds, "--grid", "train.lr=0.01", "--random", "2", "--space", fx.write("space.json", '{"train.lr": [0.01, 0.001]}'), "--seeds", "1", "-o", fx.o("sw")], 2, "--grid and --random are two ways to give the settings"),
    ("sweep", "missing dataset", lambda fx: ["sweep", "sasrec", fx.inp.missing, "--grid", "train.lr=0.01", "--seeds", "1", "-o", fx.o("sw")], 4, "missing.safetensors: no such file"),
    ("sweep", "-o names the dataset", lambda fx: (lambda ds: ["sweep", "sasrec", ds, "--grid", "train.lr=0.01", "--seeds", "1", "-o", ds])(fx.copy(fx.inp.ds)), 6, SAME.format("DATASET")),
    ("sweep", "output folder under a file", lambda fx: ["sweep", "sasrec", fx.inp.ds, "--grid", "train.lr=0.01", "--seeds", "1", "-o", blocked(fx, "sw")], 6, "blocker/sw/results.csv: Not a directory; "),
    ("export", "unknown format", lambda fx: ["export", fx.inp.ds, "--format", "parquet", "-o", fx.o("x")], 2, "--format parquet: choose one of recbole, csv"),
    ("export", "-o names the dataset", lambda fx: ["export", fx.inp.ds, "--format", "csv", "-o", fx.inp.ds], 6, "is also the DATASET input"),
    ("export", "missing dataset", lambda fx: ["export", fx.o("nope.safetensors"), "--format", "csv", "-o", fx.o("x.csv")], 4, "no such file"),
    ("export", "a folder name with a slash", lambda fx: ["export", fx.inp.ds, "--name", "a/b", "-o", fx.o("rb")], 2, "--name 'a/b': give a plain dataset name"),
    ("subsample", "share of 0", lambda fx: ["subsample", fx.inp.ds, "--keep-users", "0", "-o", fx.o()], 2, "--keep-users: 0.0 is out of range; use a share in (0, 1], e.g. 0.1"),
    ("subsample", "share above 1", lambda fx: ["subsample", fx.inp.ds, "--keep-users", "1.5", "-o", fx.o()], 2, "--keep-users: 1.5 is out of range; use a share in (0, 1], e.g. 0.1"),
    ("subsample", "missing dataset", lambda fx: ["subsample", fx.inp.missing, "--keep-users", "0.5", "-o", fx.o()], 4, "missing.safetensors"),
    ("subsample", "-o names the dataset", lambda fx: ["subsample", (d := fx.copy(fx.inp.ds)), "--keep-users", "0.5", "-o", d], 6, "is also the DATASET input; write to another file"),
    ("merge", "missing shard", lambda fx: ["merge", fx.inp.missing, "-o", fx.o()], 4, "missing.safetensors: no such file"),
    ("merge", "a features artifact that is no shard", lambda fx: ["merge", fx.inp.feats, fx.inp.feats, "-o", fx.o()], 5, "not a shard"),
    ("merge", "dataset given as a shard", lambda fx: ["merge", fx.inp.ds, "-o", fx.o()], 5, "expected a features artifact, got a dataset artifact"),
    ("merge", "output folder is a file", lambda fx: ["merge", fx.inp.feats, "-o", blocked(fx)], 6, "blocker/out.safetensors: Not a directory"),
    ("merge", "-o names a shard", lambda fx: ["merge", (s := fx.copy(fx.inp.shard0)), fx.inp.shard1, "-o", s], 6, "scratch/shard0.safetensors " + SAME.format("SHARDS")),
]


# ---- the test ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory.mktemp("inputs"))


def _id(case) -> str:
    return f"{case[0]}: {case[1]}"


@pytest.mark.parametrize("command,name,argv,code,fragment", CASES, ids=[_id(c) for c in CASES])
def test_bad_input(command, name, argv, code, fragment, inputs, tmp_path, monkeypatch):
    import signal

    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    (tmp_path / "scratch").mkdir(), (tmp_path / "out").mkdir()
    fx = Fx(inputs, tmp_path / "scratch", tmp_path / "out", monkeypatch)
    folders = (Path(inputs.ds).parent, fx.scratch)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        args = [str(a) for a in argv(fx)]
        assert args[0] == command
        before = _contents(*folders)
        r = CliRunner().invoke(app, args)
    finally:
        signal.signal(signal.SIGTERM, handler)
    lines = r.stderr.strip().splitlines()
    if fx.after_work:  # the notes of the work done, then the one line of the failure
        assert not any(line.startswith(("error", "interrupted")) for line in lines[:-1]), r.stderr
        lines = lines[-1:]
    assert r.exit_code == code, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output, r.output
    first = "interrupted; " if code == 130 else "error: "  # Ctrl-C and SIGTERM are no error of the input
    assert len(lines) == 1 and lines[0].startswith(first) and fragment in lines[0], r.stderr
    assert r.stdout == "" and sorted(p.name for p in fx.out.iterdir()) == []
    assert _contents(*folders) == before  # every input (and nothing else) there, unchanged byte for byte


def _contents(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_subcommand_has_at_least_three_cases():
    import typer.main

    from mmrec_cli.cli.app import app

    commands = set(typer.main.get_command(app).commands)
    counts = {c: sum(1 for case in CASES if case[0] == c) for c in commands}
    assert {c: n for c, n in counts.items() if n < 3} == {}
    assert {case[0] for case in CASES} <= commands


# ---- the pieces the table reaches only through the preflight ----------------------------------------------


def test_partial_folder_blocked_by_a_file_is_an_io_failure(tmp_path):
    """`extract`/`caption` check -o first; OUTPUT.partial/ itself must still fail as an IO error, not a bug."""
    from mmrec_cli.errors import IO_FAILURE, MmrecError
    from mmrec_cli.features.partial import Partial

    (tmp_path / "blocker").write_text("a file\n")
    with pytest.raises(MmrecError) as err:
        Partial(tmp_path / "blocker" / "f.safetensors", {}, False, print)
    assert err.value.code == IO_FAILURE and str(err.value).startswith(f"cannot write {tmp_path}/blocker/f.safetensors.partial: Not a directory")


def test_check_writable_creates_nothing_and_names_the_fix(tmp_path, monkeypatch):
    import os

    from mmrec_cli.errors import IO_FAILURE, MmrecError
    from mmrec_cli.io.atomic import check_writable

    for ok in (None, "-", tmp_path / "new" / "deeper" / "out.safetensors", tmp_path / "out.json"):
        check_writable(ok)
    assert list(tmp_path.iterdir()) == []  # the atomic write makes missing folders, the check does not
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only folder (root may write anywhere)
    with pytest.raises(MmrecError) as err:
        check_writable(tmp_path / "new" / "m.ckpt", "--checkpoint")
    assert err.value.code == IO_FAILURE
    assert str(err.value) == f"cannot write {tmp_path}/new/m.ckpt: Permission denied; make {tmp_path} writable or give another --checkpoint path"


def test_check_distinct_sees_one_file_under_every_name(tmp_path):
    """Links, hard links, '..' through a missing folder and lists are one file; '-' and None are streams."""
    import os

    from mmrec_cli.errors import IO_FAILURE, MmrecError
    from mmrec_cli.io.atomic import check_distinct

    data = tmp_path / "ds.safetensors"
    data.write_bytes(b"data")
    (tmp_path / "soft").symlink_to(data)
    os.link(data, tmp_path / "hard")
    refused = {
        str(data): f"-o {data} is also the DATASET input; write to another file",
        str(tmp_path / "soft"): f"-o {tmp_path}/soft is also the DATASET input; write to another file",
        str(tmp_path / "hard"): f"-o {tmp_path}/hard is also the DATASET input; write to another file",
        f"{tmp_path}/new/../ds.safetensors": f"-o {tmp_path}/new/../ds.safetensors is also the DATASET input; write to another file",
    }
    for out, message in refused.items():
        with pytest.raises(MmrecError) as err:
            check_distinct({"-o": out, "--report": None}, {"MODEL": "-", "DATASET": [tmp_path / "other", data]})
        assert err.value.code == IO_FAILURE and str(err.value) == message
    with pytest.raises(MmrecError) as err:
        check_distinct({"-o": tmp_path / "m.json", "--rankings": tmp_path / "x" / ".." / "m.json"}, {"--input": "-"})
    assert str(err.value) == f"--rankings {tmp_path}/x/../m.json is also the -o file; give each output its own file"
    with pytest.raises(MmrecError) as err:
        check_distinct({"-o": tmp_path / "c.json"}, {"--config": tmp_path / "c.json"})  # neither exists yet
    assert str(err.value) == f"-o {tmp_path}/c.json is also the --config file; write to another file"
    check_distinct({"-o": "-", "--rankings": None, "--report": tmp_path / "r.html"}, {"--input": "-", "DATASET": data, "--features": None})
    assert data.read_bytes() == b"data" and sorted(p.name for p in tmp_path.iterdir()) == ["ds.safetensors", "hard", "soft"]


def test_model_settings_are_checked_by_name_before_any_data():
    """Negative sizes and counts, non-finite floats and std: out_of_range (exit 3), each by its name; 0 layers
    (an ablation) and 0 modal_dim (no projection) stay allowed."""
    import dataclasses

    from mmrec_cli import models
    from mmrec_cli.errors import USAGE, MmrecError
    from mmrec_cli.training.loading import check_shape

    cfg = lambda name, **kw: dataclasses.replace(models.get(name).config(), **kw)  # noqa: E731
    for ok in (cfg("sasrec", layers=0, inner=0, init_std=0.0), cfg("alignrec", layers=0, item_layers=0, enc_layers=0), cfg("mmmlp", modal_dim=0, fusion_layers=0), cfg("missrec", dec_layers=0)):
        check_shape(ok)
    refused = [
        (cfg("sasrec", init_std=-0.5), "config: model.init_std: -0.5 is out of range; use a finite number, 0 or more"),
        (cfg("mmmlp", init_std=float("inf")), "config: model.init_std: inf is out of range; use a finite number, 0 or more"),
        (cfg("missrec", dec_layers=-1), "config: model.dec_layers: -1 is out of range; use 0 or more"),
        (cfg("alignrec", knn_k=-3), "config: model.knn_k: -3 is out of range; use 0 or more"),
        (cfg("mmmlp", token_hidden=0), "config: model.token_hidden: 0 is out of range; use 1 or more"),
        (cfg("missrec", temperature=float("nan")), "config: model.temperature: nan is out of range; use a finite number"),
    ]
    for bad, message in refused:
        with pytest.raises(MmrecError) as err:
            check_shape(bad)
        assert (err.value.code, str(err.value)) == (USAGE, message)
