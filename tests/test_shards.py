"""mmrec extract --shard I/N and mmrec merge: tiny random BERT and open_clip models, generated images."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _cli import error_line, run
from _tiny_models import make_image, write_items

from mmrec_cli.io import artifacts
from mmrec_cli.io import feature_file as F

# shard 0/2 = a, b (one sentence each); shard 1/2 = c, d, e (up to three): the stacks are wider in shard 1
RECORDS = [
    {"item_id": "a", "text": "red glue", "images": ["img/0.png"]},
    {"item_id": "b", "text": "steel screw", "images": []},
    {"item_id": "c", "text": "Red glue. Heavy duty bolt. A small lid.", "images": ["img/1.png", "img/0.png", "img/missing.png"]},
    {"item_id": "d", "text": "", "images": ["img/2.png"]},
    {"item_id": "e", "text": ["glass beaker", "steel screw"], "images": ["img/1.png", "img/2.png"]},
]


def _items(tmp_path, records=RECORDS):
    for i in range(3):
        make_image(tmp_path / "img" / f"{i}.png", i)
    return write_items(tmp_path / "items.jsonl", records)


def _text(models, items, *extra):
    # --batch-size 1: a vector does not depend on which texts share its batch (padding changes float rounding)
    return ["extract", items, "--text", "bert", "--text-model", models.bert, "--batch-size", 1, *extra]


def test_two_shards_merge_to_the_unsharded_features(tmp_path, models):
    items = _items(tmp_path)
    raw = np.arange(5 * 3, dtype="<f4").reshape(5, 3)
    raw.tofile(tmp_path / "raw.feat")
    args = _text(models, items, "--per-sentence", "--image", "clip", *models.clip, "--import", f"raw={tmp_path / 'raw.feat'}")
    assert run(*args, "-o", tmp_path / "whole.safetensors").exit_code == 0
    assert run(*args, "--shard", "0/2", "-o", tmp_path / "s0.safetensors").exit_code == 0
    r = run(*args, "--shard", "1/2", "--max-batches", 2, "-o", tmp_path / "s1.safetensors")
    assert r.exit_code == 130 and os.path.isdir(tmp_path / "s1.safetensors.partial")
    r = run(*args, "--shard", "1/2", "--resume", "-o", tmp_path / "s1.safetensors")
    assert r.exit_code == 0 and "resuming from" in r.stderr, r.output
    part, meta = F.load(str(tmp_path / "s1.safetensors"))
    assert meta["item_ids"] == ["c", "d", "e"] and part["text_stack"].shape == (3, 3, 32)
    assert meta["shard"] == {"index": 1, "count": 2, "rows": [2, 5], "items": 5, "item_ids": artifacts.fingerprint_strings(list("abcde"))}
    assert F.load(str(tmp_path / "s0.safetensors"))[0]["text_stack"].shape == (2, 1, 32)

    r = run("merge", tmp_path / "s1.safetensors", tmp_path / "s0.safetensors", "-o", tmp_path / "merged.safetensors")
    assert r.exit_code == 0, r.output
    whole, wmeta = F.load(str(tmp_path / "whole.safetensors"))
    merged, mmeta = F.load(str(tmp_path / "merged.safetensors"))
    assert mmeta["item_ids"] == wmeta["item_ids"] == list("abcde")
    assert sorted(merged) == sorted(whole)
    for name in whole:
        assert merged[name].dtype == whole[name].dtype and np.array_equal(merged[name], whole[name]), name
    assert set(mmeta) == set(wmeta) and [k for k in wmeta if mmeta[k] != wmeta[k]] == ["command"]
    assert mmeta["command"]["command"] == "mmrec merge" and [c["params"]["shard"] for c in mmeta["command"]["shards"]] == ["0/2", "1/2"]


def _three_shards(tmp_path, models, *extra):
    items = _items(tmp_path / "data", [{"item_id": k, "text": f"{k} glue bottle"} for k in "abcdefg"])
    paths = [tmp_path / f"s{i}.safetensors" for i in range(3)]
    for i, p in enumerate(paths):
        assert run(*_text(models, items, *extra), "--shard", f"{i}/3", "-o", p).exit_code == 0
    return items, paths


def test_merge_refuses_a_duplicated_or_missing_shard(tmp_path, models):
    _, (s0, s1, s2) = _three_shards(tmp_path, models)
    out = tmp_path / "merged.safetensors"
    r = run("merge", s0, s1, s1, s2, "-o", out)
    assert r.exit_code == 3 and error_line(r) == f"error: shard 1/3 is given twice ({s1} and {s1}); give each shard once"
    r = run("merge", s2, s0, "-o", out)
    assert r.exit_code == 3 and error_line(r) == "error: shard 1/3 missing: 2 of 3 shards given; extract it with --shard and merge all 3"
    assert sorted(os.listdir(tmp_path)) == ["data", "s0.safetensors", "s1.safetensors", "s2.safetensors"]  # no output, no temp file
    assert run("merge", s2, s1, s0, "-o", out).exit_code == 0
    assert F.load(str(out))[1]["item_ids"] == list("abcdefg")


def test_merge_refuses_shards_that_do_not_belong_together(tmp_path, models, tiny_dataset):
    items, (s0, s1, s2) = _three_shards(tmp_path, models)
    out = tmp_path / "merged.safetensors"
    other = run(*_text(models, items, "--pooling", "mean"), "--shard", "1/3", "-o", tmp_path / "mean1.safetensors")
    assert other.exit_code == 0
    r = run("merge", s0, tmp_path / "mean1.safetensors", s2, "-o", out)
    assert r.exit_code == 5 and error_line(r) == (
        f"error: {tmp_path / 'mean1.safetensors'}: extracted with other encoder settings than {s0} (--pooling, text encoder differ); "
        "extract every shard with the same options and models"
    )
    changed = write_items(tmp_path / "data" / "items2.jsonl", [{"item_id": k, "text": f"{k} glue"} for k in "abcdefg"])
    assert run(*_text(models, changed), "--shard", "2/3", "-o", tmp_path / "x2.safetensors").exit_code == 0
    r = run("merge", s0, s1, tmp_path / "x2.safetensors", "-o", out)
    fp, fp0 = artifacts.fingerprint_file(changed), artifacts.fingerprint_file(items)
    assert r.exit_code == 5 and error_line(r) == (
        f"error: {tmp_path / 'x2.safetensors'}: extracted from another items file than {s0} (fingerprint {fp}, not {fp0}); extract every shard from the same items file"
    )
    assert run(*_text(models, items), "-o", tmp_path / "whole.safetensors").exit_code == 0
    r = run("merge", s0, tmp_path / "whole.safetensors", "-o", out)
    assert r.exit_code == 5 and error_line(r) == (
        f"error: {tmp_path / 'whole.safetensors'}: a whole features artifact, not a shard; merge the files written by `mmrec extract ... --shard I/N`"
    )
    ds_path, _ = tiny_dataset
    r = run("merge", ds_path, s1, "-o", out)
    assert r.exit_code == 5 and error_line(r) == f"error: {ds_path}: expected a features artifact, got a dataset artifact"
    r = run("merge", s0, tmp_path / "nope.safetensors", "-o", out)
    assert r.exit_code == 4 and error_line(r) == f"error: {tmp_path / 'nope.safetensors'}: no such file; check the path"
    assert not out.exists()


@pytest.mark.parametrize("spec", ["3/2", "x", "2/2", "1/0", "-1/2", "1/2/3", ""])
def test_bad_shard_values_are_usage_errors(tmp_path, spec):
    items = write_items(tmp_path / "items.jsonl", [{"item_id": "a", "text": "glue"}])
    out = tmp_path / "f.safetensors"
    r = run("extract", items, "--text", "bert", "--shard", spec, "-o", out)
    assert r.exit_code == 2
    assert error_line(r) == f"error: --shard {spec}: expected I/N with 0 <= I < N (e.g. --shard 0/4 for the first of 4 shards)"
    assert sorted(os.listdir(tmp_path)) == ["items.jsonl"]


def test_more_shards_than_items_is_refused(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", [{"item_id": k, "text": "glue"} for k in "abc"])
    r = run(*_text(models, items), "--shard", "0/4", "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 3 and error_line(r) == f"error: --shard 0/4: {items} has only 3 items to encode; use at most 3 shards"
    assert sorted(os.listdir(tmp_path)) == ["items.jsonl"]
