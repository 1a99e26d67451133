"""mmrec caption: top-N CLIP vocabulary words per image, the cached vocabulary, and captions -> MSM4SR's x^v."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from _cli import run
from _tiny_models import WORDS, make_image, write_items

from mmrec_cli.io import artifacts
from mmrec_cli.io import feature_file as F


@pytest.fixture
def data(tmp_path):
    for i in range(3):
        make_image(tmp_path / f"{i}.png", i)
    (tmp_path / "bad.png").write_bytes((tmp_path / "0.png").read_bytes()[:100])
    records = [
        {"item_id": "a", "text": "red glue", "images": ["0.png", "1.png"]},
        {"item_id": "b", "text": "steel screw", "images": ["2.png", "bad.png"]},
        {"item_id": "c", "text": "beaker"},
    ]
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS[:20] + ["", WORDS[0]]) + "\n")
    return SimpleNamespace(items=write_items(tmp_path / "items.jsonl", records), vocab=tmp_path / "vocab.txt", dir=tmp_path)


def _lines(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_caption_top_n_words_per_image_and_cached_vocabulary(data, models):
    out, cache = data.dir / "caps.jsonl", data.dir / "vocab.safetensors"
    args = ["caption", data.items, *models.clip, "--vocab", data.vocab, "--vocab-cache", cache, "--top-n", 5]
    r = run(*args, "-o", out)
    assert r.exit_code == 0, r.output
    assert "vocabulary: 20 words embedded in" in r.stderr and "image: skipped 1 images: 1 corrupt or truncated" in r.stderr
    lines = _lines(out)
    assert [(x["item_id"], x["image"]) for x in lines] == [("a", "0.png"), ("a", "1.png"), ("b", "2.png"), ("c", None)]
    assert lines[-1] == {"item_id": "c", "image": None, "words": [], "scores": []}
    for x in lines[:3]:
        assert len(x["words"]) == 5 and set(x["words"]) <= set(WORDS[:20]) and x["scores"] == sorted(x["scores"], reverse=True)
    assert _brute_force_top(models, data.dir / "0.png", WORDS[:20], 5) == lines[0]["words"]
    _, meta = artifacts.load(cache, kind="vocabulary", torch=False)
    assert meta["words"] == WORDS[:20]
    r = run(*args, "-o", data.dir / "again.jsonl")
    assert r.exit_code == 0 and f"vocabulary: 20 word embeddings from the cache {cache}" in r.stderr
    assert (data.dir / "again.jsonl").read_bytes() == out.read_bytes()


def _brute_force_top(models, image, words, n):
    import torch
    from PIL import Image

    from mmrec_cli.features.clip import load_clip

    clip = load_clip(models.config, models.ckpt, "cpu")
    with torch.inference_mode():
        img = clip.model.encode_image(clip.preprocess(Image.open(image).convert("RGB"))[None], normalize=True)
        txt = clip.model.encode_text(clip.tokenizer(words), normalize=True)
    return [words[i] for i in (img @ txt.T)[0].topk(n).indices.tolist()]


def test_default_vocabulary_is_the_tokenizers_whole_words(models):
    from mmrec_cli.features.caption import default_vocabulary
    from mmrec_cli.features.clip import load_clip

    words = default_vocabulary(load_clip(models.config, models.ckpt, "cpu").tokenizer)
    assert len(words) > 30000 and len(set(words)) == len(words)
    assert all(w.isalpha() and w.isascii() and len(w) >= 2 for w in words)
    assert {"glue", "bottle", "screw", "glass"} <= set(words)


def test_captions_become_msm4sr_image_stacks(data, models):
    caps, feats = data.dir / "caps.jsonl", data.dir / "imgwords.safetensors"
    assert run("caption", data.items, *models.clip, "--vocab", data.vocab, "--vocab-cache", data.dir / "v.safetensors", "--top-n", 4, "-o", caps).exit_code == 0
    text = data.dir / "text.safetensors"
    assert run("extract", data.items, "--text", "bert", "--text-model", models.bert, "--per-sentence", "-o", text).exit_code == 0
    r = run("extract", caps, "--text", "bert", "--text-model", models.bert, "--per-sentence", "--as", "image", "--merge", text, "-o", feats)
    assert r.exit_code == 0, r.output
    assert "image: 1 of 3 items have no caption words; masked (image_mask = 0)" in r.stderr
    t, meta = F.load(str(feats))
    assert meta["item_ids"] == ["a", "b", "c"] and meta["modalities"] == ["image", "text"]
    assert t["image_stack"].shape == (3, 2, 32)
    assert t["image_stack_mask"].tolist() == [[1, 1], [1, 0], [0, 0]] and t["image_mask"].tolist() == [1, 1, 0]
    assert np.allclose(t["image"][0], t["image_stack"][0].mean(0), atol=1e-6)
    assert meta["encoders"]["image"]["source"] == "captions" and meta["encoders"]["text"]["source"] == "items"
    words = " ".join(_lines(caps)[0]["words"])
    alone = data.dir / "one.safetensors"
    write_items(data.dir / "one.jsonl", [{"item_id": "x", "text": [words]}])
    assert run("extract", data.dir / "one.jsonl", "--text", "bert", "--text-model", models.bert, "-o", alone).exit_code == 0
    assert np.allclose(F.load(str(alone))[0]["text"][0], t["image_stack"][0, 0], atol=1e-5)


def test_caption_rejects_bad_options(data, models):
    r = run("caption", data.items, *models.clip, "--vocab", data.vocab, "--template", "a photo", "-o", data.dir / "c.jsonl")
    assert r.exit_code == 3 and r.stderr.strip() == "error: --template 'a photo': must hold '{}' exactly once, e.g. 'a photo of {}'"
    (data.dir / "empty.txt").write_text("\n\n")
    r = run("caption", data.items, *models.clip, "--vocab", data.dir / "empty.txt", "-o", data.dir / "c.jsonl")
    assert r.exit_code == 3 and r.stderr.strip() == f"error: {data.dir / 'empty.txt'}: no words found; give one word per line"


def test_caption_checks_items_and_output_before_loading_clip(data, models, monkeypatch):
    """A malformed items file, one without images, a missing image root or a blocked output fails at once."""
    import mmrec_cli.features.clip as clip

    monkeypatch.setattr(clip, "load_clip", lambda *a, **k: pytest.fail("CLIP loaded before the inputs were checked"))
    opts = [*models.clip, "--vocab", data.vocab, "--vocab-cache", data.dir / "v.safetensors"]
    bad = data.dir / "bad.jsonl"
    bad.write_text('{"item_id": "a", "images": ["0.png"]}\n{"item_id": "b", "images": 5}\n')
    no_images = write_items(data.dir / "texts.jsonl", [{"item_id": "a", "text": "red glue"}])
    (data.dir / "blocker").write_text("a file\n")
    cases = [
        ((bad, "-o", data.dir / "c.jsonl"), 3, f"error: {bad}:2: 'images' must be a path or a list of paths"),
        ((no_images, "-o", data.dir / "c.jsonl"), 3, f"error: {no_images}: no item lists an image ('images' field); nothing to caption"),
        ((data.items, "--image-root", data.dir / "nowhere", "-o", data.dir / "c.jsonl"), 3, f"error: --image-root {data.dir / 'nowhere'}: no such folder"),
        ((data.items, "-o", data.dir / "blocker" / "c.jsonl"), 6, f"error: cannot write {data.dir}/blocker/c.jsonl: Not a directory; {data.dir}/blocker is a file; give another -o path"),
    ]
    for args, code, line in cases:
        r = run("caption", *args, *opts)
        assert (r.exit_code, r.stderr.strip()) == (code, line)
    assert not (data.dir / "c.jsonl").exists() and not (data.dir / "v.safetensors").exists()


def test_caption_items_on_stdin(data, models):
    """`caption - -o c.jsonl` crashed (exit 1) fingerprinting '-' for OUTPUT.partial/; it captions what the file does
    (images relative to --image-root, or to the current folder)."""
    from _cli import cli

    from mmrec_cli.cli.app import app

    opts = [*models.clip, "--vocab", str(data.vocab), "--vocab-cache", str(data.dir / "v.safetensors"), "--top-n", "3", "--image-root", str(data.dir)]
    assert run("caption", data.items, *opts, "-o", data.dir / "named.jsonl").exit_code == 0
    r = cli.invoke(app, ["caption", "-", *opts, "-o", str(data.dir / "piped.jsonl")], input=open(data.items, encoding="utf-8").read())
    assert r.exit_code == 0, r.output
    assert _lines(data.dir / "piped.jsonl") == _lines(data.dir / "named.jsonl") and len(_lines(data.dir / "piped.jsonl")) == 4
