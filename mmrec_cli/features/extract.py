"""The `mmrec extract` pipeline: items (or captions) -> encoders -> the features artifact.

Tensors per modality follow mmrec_cli/io/feature_file.py: m (N, D), m_mask (N,), and with stacks m_stack (N, S, D),
m_stack_mask (N, S); with --word-drop also m_aug (N, D), the vector of the item's text with words dropped. Rows follow the items file. Everything the vectors depend on (items file, encoder weights,
settings, device, threads) is part of the resume key and of the output metadata.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmrec_cli.errors import bad_input, out_of_range
from mmrec_cli.features import precision, runner, shards
from mmrec_cli.features.images import DEFAULT_MAX_PIXELS
from mmrec_cli.features.items import Source
from mmrec_cli.features.plan import Plan, Problems, assemble, image_plan, text_plan


@dataclass
class Options:
    text: str | None = None  # "bert" | "clip"
    image: str | None = None  # "clip"
    text_model: str | None = None  # BERT folder or hub id; None = the embedded MiniLM
    pooling: str = "auto"
    normalize: bool | None = None  # None: as the text model's sentence-transformers config; images off
    max_length: int = 0
    per_sentence: bool = False
    max_sentences: int = 16
    text_as: str | None = None  # modality name of the text output; None: "text", or "image" for a captions file
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    image_root: str | None = None
    allow_outside_root: bool = False
    max_images: int = 8
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = 64
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (mmrec_cli/features/precision.py)
    threads: int = 0
    resume: bool = False
    max_batches: int = 0
    imports: list = field(default_factory=list)  # [(modality, raw float32 file)]
    dataset: str | None = None
    merge: str | None = None
    shard: str | None = None  # "I/N": encode only block I of N of the items (mmrec_cli/features/shards.py)
    word_drop: float = 0.0  # > 0: also TEXT_aug, each item's text with this share of its words dropped
    seed: int = 0  # of the dropped words


@dataclass
class Hooks:
    note: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)
    bar: Callable = lambda description, total, unit="items": nullcontext(lambda n=1: None)


def extract(items_path: str, output: str, opts: Options, command: dict | None = None, hooks: Hooks | None = None) -> dict:
    """Run the pipeline and write `output`; returns {modality: seconds}."""
    from mmrec_cli.features.items import read_source
    from mmrec_cli.io import feature_file as features

    hooks = hooks or Hooks()
    if opts.shard is not None:
        shards.parse(opts.shard)  # a usage error before any file is read
    source = read_source(items_path)
    opts = dataclasses.replace(opts, text_as=opts.text_as or ("image" if source.kind == "captions" else "text"))
    check_options(opts)
    check_source(source, opts)
    whole = _select(source, opts, hooks)
    source, shard = shards.select(whole, opts.shard)
    root = image_root(items_path, opts.image_root) if opts.image else None
    device = runtime(opts.device, opts.threads)
    encoders = build_encoders(opts, device, precision.resolve(opts.precision, device))
    settings = resume_key(source, opts, encoders, device)
    partial = _partial(output, settings, opts, hooks) if encoders else None
    try:
        tensors, infos, timing = encode_all(source, encoders, root, opts, partial, hooks)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: the finished batches were flushed on the way out
        if partial is not None and partial.dir.is_dir():
            hooks.note(f"the finished batches are kept in {partial.dir}/; run the same command with --resume to continue")
        raise
    _imports(opts.imports, len(whole.item_ids), shard.rows if shard else slice(None), tensors, infos)
    if opts.merge:
        _merge(opts.merge, source.item_ids, tensors, infos, hooks)
    inputs = {"items": {"path": items_path, "fingerprint": settings["items"]}}
    config = {k: v for k, v in dataclasses.asdict(opts).items() if k not in ("resume", "max_batches", "shard")}
    extra = {"shard": shard.meta()} if shard else None
    features.save(output, tensors, source.item_ids, command or {"command": "mmrec extract"}, config, inputs, infos, extra)
    if partial is not None:
        partial.remove()
    hooks.note(f"wrote {output}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items() if not k.endswith("mask")))
    note_missing(source, opts, hooks)  # after the output: a failure before it stays one line
    return timing


def encode_all(source: Source, encoders: dict, root: Path | None, opts: Options, partial, hooks: Hooks) -> tuple[dict, dict, dict]:
    """(tensors, encoder metadata per modality, seconds per modality) of the text and image encoders."""
    budget = runner.Budget(opts.max_batches)
    tensors, infos, timing = {}, {}, {}
    if "text" in encoders:
        found, infos[opts.text_as], timing[opts.text_as] = text_features(source, encoders["text"], opts, partial, budget, hooks)
        tensors.update(found)
    if "image" in encoders:
        found, infos["image"], timing["image"] = image_features(source, encoders["image"], root, opts, partial, budget, hooks)
        tensors.update(found)
    return tensors, infos, timing


def check_options(opts: Options) -> None:
    if opts.text not in (None, "bert", "clip"):
        raise bad_input(f"--text {opts.text}: expected bert or clip")
    if opts.image not in (None, "clip"):
        raise bad_input(f"--image {opts.image}: expected clip")
    if not (opts.text or opts.image or opts.imports):
        raise bad_input("nothing to extract; give --text bert|clip, --image clip, or --import FILE")
    if opts.per_sentence and not opts.text:
        raise bad_input("--per-sentence needs --text bert|clip")
    if opts.text_model and opts.text != "bert":
        raise bad_input("--text-model is for --text bert; --text clip uses --clip-model / --clip-pretrained")
    if not opts.text_as or "_" in opts.text_as:
        raise bad_input(f"--as {opts.text_as!r}: a modality name without '_' (e.g. text, image)")
    produced = ([opts.text_as] if opts.text else []) + (["image"] if opts.image else [])
    if len(set(produced)) < len(produced):
        raise bad_input(f"--as {opts.text_as} and --image clip would both write modality '{opts.text_as}'; choose another --as name")
    for modality, _ in opts.imports:
        if not modality or "_" in modality or modality in produced:
            raise bad_input(f"--import {modality}=...: the modality name must be new and without '_'")
        produced.append(modality)  # a second --import of it would silently replace the first
    if not 0 <= opts.word_drop < 1:
        raise out_of_range("--word-drop", opts.word_drop, "a share in [0, 1)")
    if opts.word_drop and not opts.text:
        raise bad_input("--word-drop needs --text bert|clip (it encodes the item text a second time with words dropped)")
    runner.check_counts(opts, ("batch_size", "max_length", "max_sentences", "max_images", "max_pixels", "threads", "max_batches"))


def check_source(source: Source, opts: Options) -> None:
    if source.kind == "captions" and opts.image:
        raise bad_input(f"{source.path}: a captions file has no images; encode its words with --text bert --as image")
    if source.kind == "captions" and not opts.text and not opts.imports:
        raise bad_input(f"{source.path}: a captions file holds words; encode them with --text bert --per-sentence")
    if source.kind == "captions" and opts.word_drop:
        raise bad_input(f"{source.path}: --word-drop drops words of item texts; a captions file has none (run it on the items file)")
    if opts.image and not any(source.images):
        raise bad_input(f"{source.path}: no item lists an image ('images' field{_keys_found(source)}); nothing to encode with --image clip")
    if opts.text and source.kind == "items" and not any(t.strip() for t in source.texts):
        raise bad_input(
            f"{source.path}: no item has a text ('text' field{_keys_found(source)}); write each item's text under 'text' "
            "(`mmrec prepare ... --items META --items-out items.jsonl` builds it from Amazon metadata or titles)"
        )


def _keys_found(source: Source) -> str:
    """', keys found: a, b' from the first record of an items file (nothing for standard input)."""
    if source.path == "-":
        return ""
    from mmrec_cli.io.jsonl import read_jsonl

    for _, obj in read_jsonl(source.path):
        return "; keys found: " + ", ".join(sorted(obj))
    return ""


def note_missing(source: Source, opts: Options, hooks: Hooks) -> None:
    """Say how many of the encoded items got no vector of a modality (zeros, masked)."""
    n = len(source.item_ids)
    if opts.text and source.kind == "items":
        empty = sum(not t.strip() for t in source.texts)
        if empty:
            hooks.note(f"text: {empty} of {n} items have no text (their vectors are zeros, masked)")
    if opts.image:
        empty = sum(not imgs for imgs in source.images)
        if empty:
            hooks.note(f"image: {empty} of {n} items list no image (their vectors are zeros, masked)")


def _select(source: Source, opts: Options, hooks: Hooks) -> Source:
    """Restrict to a dataset's items (--dataset), failing when some are missing."""
    if not opts.dataset:
        return source
    from mmrec_cli.features.items import match_dataset
    from mmrec_cli.io import artifacts

    ids = artifacts.read_meta(opts.dataset, kind="dataset")["item_ids"]
    source, dropped = match_dataset(source, ids, opts.dataset)
    if dropped:
        hooks.note(f"{source.path}: skipped {dropped} items that are not in {opts.dataset}")
    return source


def runtime(device: str, threads: int) -> str:
    """The torch device to use ('auto' = cuda when visible), with `threads` CPU threads (0 = torch's choice)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise bad_input(f"--device {device}: not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise bad_input(f"--device {device}: no CUDA device is visible here; use --device cpu")
    return device


def build_encoders(opts: Options, device: str, numbers: str = "fp32") -> dict:
    """The text and image encoders the options ask for, on `device`, computing in `numbers` (fp32, bf16, fp16)."""
    from mmrec_cli.features.clip import load_clip, text_encoder
    from mmrec_cli.features.images import image_encoder
    from mmrec_cli.features.text import load_bert

    clip = load_clip(opts.clip_model, opts.clip_pretrained, device, numbers) if "clip" in (opts.text, opts.image) else None
    out = {}
    if opts.text == "bert":
        out["text"] = load_bert(opts.text_model, opts.pooling, opts.normalize, opts.max_length, device, numbers)
    elif opts.text == "clip":
        out["text"] = text_encoder(clip, bool(opts.normalize))
    if opts.image == "clip":
        out["image"] = image_encoder(clip, bool(opts.normalize), opts.max_pixels, decode_workers())
    return out


def decode_workers() -> int:
    import os

    return max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2)


def resume_key(source: Source, opts: Options, encoders: dict, device: str) -> dict:
    """Everything the vectors depend on; a resumed run must match it exactly."""
    import torch

    from mmrec_cli.io.artifacts import fingerprint_strings

    skip = ("resume", "max_batches", "imports", "merge", "device", "threads")
    return {
        "items": source.fingerprint,
        "item_ids": fingerprint_strings(source.item_ids),
        "options": {k: v for k, v in dataclasses.asdict(opts).items() if k not in skip},
        "encoders": {k: e.info for k, e in encoders.items()},
        "device": device,
        "threads": torch.get_num_threads(),
    }


def _partial(output: str, settings: dict, opts: Options, hooks: Hooks):
    from mmrec_cli.features.partial import Partial

    return Partial(output, settings, opts.resume, hooks.note)


def image_root(items_path: str, given: str | None) -> Path:
    root = Path(given) if given else Path(items_path).resolve().parent
    if not root.is_dir():
        raise bad_input(f"--image-root {given}: no such folder")
    return root


def text_features(source: Source, encoder, opts: Options, partial, budget, hooks: Hooks) -> tuple[dict, dict, float]:
    name = opts.text_as
    plan = text_plan(source, opts.per_sentence, opts.max_sentences)
    encoded = _encode("text", name, plan, encoder, opts, partial, budget, hooks, "texts")
    from_stack = source.kind == "captions"
    tensors = assemble(name, plan, encoded.vectors, encoded.ok, from_stack, bool(encoder.info.get("normalize")), opts.per_sentence or from_stack)
    missing = int((tensors[f"{name}_mask"] == 0).sum())
    if missing:
        what = "caption words" if from_stack else "text"
        hooks.note(f"{name}: {missing} of {len(source.item_ids)} items have no {what}; masked ({name}_mask = 0)")
    if plan.cut:
        hooks.note(f"{name}: {plan.cut} items had more than {opts.max_sentences} sentences; kept the first {opts.max_sentences} (--max-sentences)")
    info = dict(encoder.info, source=source.kind, per_sentence=opts.per_sentence, max_sentences=opts.max_sentences)
    info["item_vector"] = "mean of the item's caption rows" if from_stack else "the whole text"
    seconds = encoded.seconds
    if opts.word_drop:
        tensors[f"{name}_aug"], more = word_dropped(source, tensors[name], encoder, opts, partial, budget, hooks)
        info.update(word_drop=opts.word_drop, word_drop_seed=opts.seed)
        seconds += more
    return tensors, info, seconds


def word_dropped(source: Source, clean: np.ndarray, encoder, opts: Options, partial, budget, hooks: Hooks) -> tuple[np.ndarray, float]:
    """TEXT_aug (N, D): each item's whole text with every word dropped with probability opts.word_drop, encoded
    by the same encoder (UniSRec's and MISSRec's word-drop view, their `.feat2CLS`). An item whose words were
    all dropped, or that has no text, keeps its clean vector."""
    name = f"{opts.text_as}_aug"
    texts = [drop_words(t, opts.word_drop, opts.seed, iid) for t, iid in zip(source.texts, source.item_ids)]
    plan = text_plan(dataclasses.replace(source, texts=texts), False, 0)
    encoded = _encode(name, name, plan, encoder, opts, partial, budget, hooks, "texts")
    aug = assemble(name, plan, encoded.vectors, encoded.ok, False, bool(encoder.info.get("normalize")), False)
    return np.where(aug[f"{name}_mask"][:, None] > 0, aug[name], clean), encoded.seconds


def drop_words(text: str, rate: float, seed: int, item_id: str) -> str:
    """`text` with each white-space separated word dropped with probability `rate`; the generator is seeded by
    (seed, item id), so an item loses the same words in every run, shard and batch order."""
    import random

    rng = random.Random(f"{seed}/{item_id}")
    return " ".join(w for w in text.split() if rng.random() >= rate)


def image_features(source: Source, encoder, root: Path, opts: Options, partial, budget, hooks: Hooks) -> tuple[dict, dict, float]:
    problems = Problems()
    plan = image_plan(source, root, opts.allow_outside_root, opts.max_images, problems)
    try:
        encoded = _encode("image", "image", plan, encoder, opts, partial, budget, hooks, "images")
    finally:
        encoder.loader.close()
    for unit, reason in encoded.errors:
        problems.add(reason, plan.origin[unit])
    tensors = assemble("image", plan, encoded.vectors, encoded.ok, True, encoder.normalize, True)
    report_images(source, plan, problems, tensors["image_mask"], opts.max_images, hooks)
    info = dict(encoder.info, image_root=str(root), max_images=opts.max_images, item_vector="mean of the item's usable images")
    return tensors, info, encoded.seconds


def report_images(source: Source, plan: Plan, problems: Problems, mask: np.ndarray, max_images: int, hooks: Hooks) -> None:
    if problems.counts:
        hooks.note(f"image: skipped {sum(problems.counts.values())} images: {problems.summary()}")
    missing = int((mask == 0).sum())
    if missing:
        hooks.note(f"image: {missing} of {len(source.item_ids)} items have no usable image; masked (image_mask = 0)")
    if plan.cut:
        hooks.note(f"image: {plan.cut} items listed more than {max_images} images; kept the first {max_images} (--max-images)")


def _encode(key: str, name: str, plan: Plan, encoder, opts: Options, partial, budget, hooks: Hooks, unit: str):
    with hooks.bar(f"{name}", len(plan.units), unit) as advance:
        encoded = runner.run(key, plan.units, encoder, opts.batch_size, partial, advance, budget)
    n = len(plan.stacks)
    rate = n / encoded.seconds if encoded.seconds > 0 else float("inf")
    hooks.note(f"{name}: {n} items, {len(plan.units)} {unit} in {encoded.seconds:.1f} s ({rate:,.1f} items/s)")
    return encoded


def _imports(imports: list, total: int, rows: slice, tensors: dict, infos: dict) -> None:
    """Precomputed raw float32 features (UniSRec .feat*) of all `total` items in order; `rows` are this run's."""
    from mmrec_cli.io.artifacts import fingerprint_file
    from mmrec_cli.io.unisrec import read_feature_file

    for modality, path in imports:
        tensors[modality] = np.ascontiguousarray(read_feature_file(Path(path), total)[rows])
        infos[modality] = {"source": "import", "file": str(path), "fingerprint": fingerprint_file(path), "dim": int(tensors[modality].shape[1])}


def _merge(path: str, item_ids: list[str], tensors: dict, infos: dict, hooks: Hooks) -> None:
    """Copy the modalities this run did not produce from another features artifact (aligned by item id)."""
    from mmrec_cli.io import feature_file as features

    theirs, meta = features.align(path, item_ids)
    added = sorted({k.split("_")[0] for k in theirs} - {k.split("_")[0] for k in tensors})
    for k, v in theirs.items():
        if k.split("_")[0] in added:
            tensors[k] = v.numpy()
    for m in added:
        infos[m] = meta.get("encoders", {}).get(m, {"source": path})
    hooks.note(f"merged {', '.join(added) or 'nothing'} from {path}")
