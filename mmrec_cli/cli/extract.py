"""mmrec extract ITEMS.jsonl --text bert --image clip -o feats.safetensors: item features for every model."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import DEVICE, DEVICE_HELP, handle_errors, invocation, progress, say

MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit (mmrec_cli.features.images.DEFAULT_MAX_PIXELS)


@handle_errors
def extract(
    items: str = typer.Argument(..., help="Items JSONL (item_id, text, images), or a captions JSONL from `mmrec caption`."),
    output: Path = typer.Option(..., "-o", "--output", help="Features artifact to write (.safetensors)."),
    text: str | None = typer.Option(None, "--text", help="Text encoder: bert (transformers; default the embedded MiniLM) | clip (open_clip text tower)."),
    image: str | None = typer.Option(None, "--image", help="Image encoder: clip (open_clip image tower)."),
    text_model: str | None = typer.Option(None, "--text-model", help="--text bert: a model folder or hub id (default: the embedded Sentence-BERT all-MiniLM-L6-v2)."),
    pooling: str = typer.Option("auto", "--pooling", help="--text bert: auto (the model's sentence-transformers setting, else cls) | cls | mean."),
    normalize: bool | None = typer.Option(None, "--normalize/--no-normalize", help="L2-normalise vectors (default: as the text model says; CLIP off)."),
    max_length: int = typer.Option(0, "--max-length", help="--text bert: max tokens per text (0 = the model's own limit)."),
    per_sentence: bool = typer.Option(False, "--per-sentence", help="Also store one vector per sentence (TEXT_stack, TEXT_stack_mask): MSM4SR's x^t."),
    max_sentences: int = typer.Option(16, "--max-sentences", help="Sentences kept per item with --per-sentence (0 = all)."),
    as_: str | None = typer.Option(None, "--as", help="Modality name of the text output (default: text; image for a captions file, MSM4SR's x^v)."),
    clip_model: str = typer.Option("ViT-B-32", "--clip-model", help="open_clip model: a built-in name, a JSON model config file, or local-dir:FOLDER."),
    clip_pretrained: str = typer.Option("openai", "--clip-pretrained", help="open_clip pretrained tag, a checkpoint file, or none (random weights, tests only)."),
    image_root: Path | None = typer.Option(None, "--image-root", help="Folder that image paths are relative to (default: the items file's folder)."),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="Allow absolute image paths and paths leading out of the image root."),
    max_images: int = typer.Option(8, "--max-images", help="Images kept per item (0 = all)."),
    max_pixels: int = typer.Option(MAX_PIXELS, "--max-pixels", help="Skip images with more pixels than this (decompression-bomb guard)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Texts or images per batch."),
    device: str = typer.Option(DEVICE, "--device", help=DEVICE_HELP),
    precision: str = typer.Option("auto", "--precision", help="Number format inside the encoders: auto (bf16 where the hardware computes it natively: a CUDA GPU with bf16, a CPU with AMX or AVX512-BF16; else fp32) | fp32 | bf16 | fp16. Vectors are stored as float32."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0 = torch's default, one per core)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUTPUT.partial/ (same inputs and options)."),
    max_batches: int = typer.Option(0, "--max-batches", help="Compute at most N batches in this run, then stop (continue with --resume)."),
    import_: list[str] = typer.Option([], "--import", help="Import raw float32 features (UniSRec .feat1CLS), rows in items-file order: FILE or MODALITY=FILE (repeatable)."),
    modality: str = typer.Option("text", "--modality", help="Modality of an --import FILE given without MODALITY=."),
    dataset: Path | None = typer.Option(None, "--dataset", help="Dataset artifact: keep its items, fail if the items file lacks some."),
    merge: Path | None = typer.Option(None, "--merge", help="Features artifact whose other modalities are copied into the output."),
    word_drop: float = typer.Option(0.0, "--word-drop", help="Also store TEXT_aug: each item's text encoded with this share of its words dropped at random, the second pre-training view of MISSRec and UniSRec (they use 0.15)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the words --word-drop drops (per item: the same words in every run and shard)."),
    shard: str | None = typer.Option(None, "--shard", help="I/N: encode only shard I of N (0 <= I < N), the contiguous block of items I*T//N .. (I+1)*T//N-1 in items-file order (T items, after --dataset); join the shards with `mmrec merge`."),
) -> None:
    """Encode item text and images into a features artifact (resumable; progress and skipped inputs on stderr)."""
    from mmrec_cli.features.extract import Hooks, Options
    from mmrec_cli.features.extract import extract as run
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct

    check_artifact_path(output)  # before any model is loaded (OUTPUT.partial/ lies in the same folder)
    imports = [_import_spec(s, modality) for s in import_]
    check_distinct({"-o": output}, {"ITEMS": items, "--dataset": dataset, "--merge": merge, "--import": [path for _, path in imports]})
    opts = Options(
        text=text, image=image, text_model=text_model, pooling=pooling, normalize=normalize, max_length=max_length,
        per_sentence=per_sentence, max_sentences=max_sentences, text_as=as_, clip_model=clip_model,
        clip_pretrained=clip_pretrained, image_root=str(image_root) if image_root else None,
        allow_outside_root=allow_outside_root, max_images=max_images, max_pixels=max_pixels, batch_size=batch_size,
        device=device, precision=precision, threads=threads, resume=resume, max_batches=max_batches,
        imports=imports, dataset=str(dataset) if dataset else None,
        merge=str(merge) if merge else None, shard=shard, word_drop=word_drop, seed=seed,
    )
    run(items, str(output), opts, recorded(), Hooks(note=say, bar=progress))


def _import_spec(spec: str, modality: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return name, path
    return modality, spec



def recorded() -> dict:
    """The invocation for the metadata, without --max-batches: a run finished in slices writes the same bytes."""
    inv = invocation()
    return dict(inv, params={k: v for k, v in inv.get("params", {}).items() if k != "max_batches"})
