"""The `mmrec caption` pipeline: each image -> the top-N vocabulary words by CLIP similarity (MSM4SR eq. 2).

The vocabulary is the CLIP tokenizer's own BPE vocabulary filtered to whole alphabetic words, or a word list
file. Its text embeddings are computed once per (model, weights, words, template) and cached as a
"vocabulary" artifact. Output: one JSON line per image {item_id, image, words, scores} (cosine similarity),
and one line with image null and no words for each item without a usable image, so every item is present.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrec_cli.errors import bad_input, mismatch, out_of_range
from mmrec_cli.features import runner
from mmrec_cli.features.extract import Hooks, image_root, report_images, runtime
from mmrec_cli.features.images import DEFAULT_MAX_PIXELS
from mmrec_cli.features.plan import Problems, image_plan


@dataclass
class Options:
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    top_n: int = 15
    vocab: str | None = None  # word list file; None = the tokenizer's whole words
    vocab_cache: str | None = None  # None = a file in the mmrec cache folder named by the cache key
    template: str = "{}"
    image_root: str | None = None
    allow_outside_root: bool = False
    max_images: int = 8
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = 64
    device: str = "auto"
    threads: int = 0
    resume: bool = False
    max_batches: int = 0


def caption(items_path: str, output: str, opts: Options, command: dict | None = None, hooks: Hooks | None = None) -> int:
    """Write the captions JSONL; returns the number of captioned images."""
    from mmrec_cli.features.clip import load_clip
    from mmrec_cli.features.images import image_encoder

    hooks = hooks or Hooks()
    _check(opts)
    source, plan, problems = read_items(items_path, opts)  # before any model: a bad items file fails in seconds
    words = read_vocabulary(opts.vocab) if opts.vocab else None
    device = runtime(opts.device, opts.threads)
    clip = load_clip(opts.clip_model, opts.clip_pretrained, device)
    words = words or default_vocabulary(clip.tokenizer)
    vocab = vocabulary_embeddings(clip, words, opts, command, hooks)
    encoder = image_encoder(clip, True, opts.max_pixels, _workers())
    partial = _partial(output, opts, source, clip.info, words, hooks)
    try:
        with hooks.bar("images", len(plan.units), "images") as advance:
            encoded = runner.run("image", plan.units, encoder, opts.batch_size, partial, advance, runner.Budget(opts.max_batches))
    finally:
        encoder.loader.close()
    for unit, reason in encoded.errors:
        problems.add(reason, plan.origin[unit])
    top_words, top_scores = top_n(encoded.vectors, encoded.ok, vocab, opts.top_n)
    written = _write(output, source, plan, encoded.ok, words, top_words, top_scores)
    mask = np.array([any(encoded.ok[u] for u in units) for units in plan.stacks], dtype=np.uint8)
    report_images(source, plan, problems, mask, opts.max_images, hooks)
    if partial is not None:
        partial.remove()
    hooks.note(f"wrote {output}: {written} images of {len(source.item_ids)} items, top {opts.top_n} of {len(words)} words ({encoded.seconds:.1f} s)")
    return written


def _check(opts: Options) -> None:
    if opts.top_n < 1:
        raise out_of_range("--top-n", opts.top_n, "1 or more")
    if opts.template.count("{}") != 1:
        raise bad_input(f"--template {opts.template!r}: must hold '{{}}' exactly once, e.g. 'a photo of {{}}'")
    runner.check_counts(opts, ("batch_size", "max_images", "max_pixels", "threads", "max_batches"))


def read_items(items_path: str, opts: Options):
    """(source, image plan, problems) of the items file, every check that needs no model done."""
    from mmrec_cli.features.items import read_source

    source = read_source(items_path)
    if source.kind != "items":
        raise bad_input(f"{items_path}: this is a captions file; give the items file (item_id, images)")
    if not any(source.images):  # the wording of `extract --image clip`
        raise bad_input(f"{source.path}: no item lists an image ('images' field); nothing to caption")
    problems = Problems()
    plan = image_plan(source, image_root(items_path, opts.image_root), opts.allow_outside_root, opts.max_images, problems)
    return source, plan, problems


def _workers() -> int:
    from mmrec_cli.features.extract import decode_workers

    return decode_workers()


def default_vocabulary(tokenizer) -> list[str]:
    """Whole alphabetic words (2+ ASCII letters) of the CLIP tokenizer's BPE vocabulary, in vocabulary order."""
    encoder = getattr(tokenizer, "encoder", None)
    if not isinstance(encoder, dict):
        raise bad_input("this CLIP model's tokenizer has no BPE word list mmrec can read; give --vocab FILE (one word per line)")
    words = (w[:-4] for w in encoder if w.endswith("</w>"))
    return [w for w in words if len(w) >= 2 and w.isascii() and w.isalpha()]


def read_vocabulary(path: str) -> list[str]:
    """One word or phrase per line (UTF-8); blank lines and repeats dropped."""
    from mmrec_cli.io.jsonl import read_lines

    words = list(dict.fromkeys(line.strip() for _, line in read_lines(path) if line.strip()))
    if not words:
        raise bad_input(f"{path}: no words found; give one word per line")
    return words


def vocabulary_embeddings(clip, words: list[str], opts: Options, command: dict | None, hooks: Hooks) -> np.ndarray:
    """(V, D) L2-normalised text embeddings of the vocabulary, from the cache when it matches."""
    from mmrec_cli.features.clip import text_encoder
    from mmrec_cli.io import artifacts

    key = cache_key(clip.info, words, opts.template)
    path = Path(opts.vocab_cache) if opts.vocab_cache else cache_folder() / f"clip-vocab-{_digest(key)}.safetensors"
    cached = _read_cache(path, key, hooks)
    if cached is not None:
        return cached
    texts = [opts.template.replace("{}", w) for w in words]
    with hooks.bar("vocabulary", len(texts), "words") as advance:
        encoded = runner.run("vocab", texts, text_encoder(clip, True), opts.batch_size * 4, advance=advance)
    meta = {"command": command or {"command": "mmrec caption"}, "key": key, "words": words, "template": opts.template}
    artifacts.save(path, {"embeddings": encoded.vectors}, "vocabulary", meta)
    hooks.note(f"vocabulary: {len(words)} words embedded in {encoded.seconds:.1f} s; cached in {path}")
    return encoded.vectors


def cache_key(clip_info: dict, words: list[str], template: str) -> dict:
    from mmrec_cli.io.artifacts import fingerprint_strings

    ident = {k: clip_info.get(k) for k in ("model", "pretrained", "weights", "dim")}
    return {"clip": ident, "words": fingerprint_strings(words), "count": len(words), "template": template}


def cache_folder() -> Path:
    base = os.environ.get("MMREC_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmrec")
    return Path(base)


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _read_cache(path: Path, key: dict, hooks: Hooks) -> np.ndarray | None:
    from mmrec_cli.io import artifacts

    if not path.is_file():
        return None
    meta = artifacts.read_meta(path)
    if meta.get("kind") != "vocabulary":
        raise mismatch(f"{path}: not a vocabulary cache (a {meta.get('kind')} artifact); give another --vocab-cache path")
    if meta.get("key") != key:
        hooks.note(f"{path}: cached for another model, vocabulary or template; recomputing")
        return None
    tensors, _ = artifacts.load(path, kind="vocabulary", torch=False)
    hooks.note(f"vocabulary: {key['count']} word embeddings from the cache {path}")
    return tensors["embeddings"]


def _partial(output, opts, source, clip_info, words, hooks):
    if output in ("-", None):
        return None
    from mmrec_cli.features.partial import Partial
    from mmrec_cli.io.artifacts import fingerprint_strings

    settings = {
        "items": source.fingerprint,
        "item_ids": fingerprint_strings(source.item_ids),
        "clip": clip_info,
        "options": {k: getattr(opts, k) for k in ("image_root", "allow_outside_root", "max_images", "max_pixels", "batch_size", "device", "threads")},
    }
    return Partial(output, settings, opts.resume, hooks.note)


def top_n(images: np.ndarray, ok: np.ndarray, vocab: np.ndarray, n: int, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine scores of the n most similar words per image (rows of unusable images: -1, 0)."""
    import torch

    n = min(n, len(vocab))
    idx, scores = np.full((len(images), n), -1, np.int64), np.zeros((len(images), n), np.float32)
    v = torch.from_numpy(np.ascontiguousarray(vocab))
    for start in range(0, len(images), chunk):
        rows = np.flatnonzero(ok[start : start + chunk]) + start
        if len(rows):
            sims = torch.from_numpy(images[rows]) @ v.T
            top = torch.topk(sims, n, dim=1)
            idx[rows], scores[rows] = top.indices.numpy(), top.values.numpy()
    return idx, scores


def _write(output: str, source, plan, ok, words, top_words, top_scores) -> int:
    from mmrec_cli.io.jsonl import jsonl_writer

    written = 0
    with jsonl_writer(output) as write:
        for item_id, units, given in zip(source.item_ids, plan.stacks, plan.given):
            usable = [(u, g) for u, g in zip(units, given) if ok[u]]
            for u, g in usable:
                write({"item_id": item_id, "image": g, "words": [words[i] for i in top_words[u]], "scores": [round(float(s), 5) for s in top_scores[u]]})
            written += len(usable)
            if not usable:
                write({"item_id": item_id, "image": None, "words": [], "scores": []})
    return written
