"""mmrec caption ITEMS.jsonl --top-n 15 -o captions.jsonl: each image -> its top-N CLIP vocabulary words."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import DEVICE, DEVICE_HELP, handle_errors, progress, say
from mmrec_cli.cli.extract import MAX_PIXELS, recorded


@handle_errors
def caption(
    items: str = typer.Argument(..., help="Items JSONL (item_id, images)."),
    output: str = typer.Option(..., "-o", "--output", help="Captions JSONL to write ('-' = stdout): item_id, image, words, scores."),
    clip_model: str = typer.Option("ViT-B-32", "--clip-model", help="open_clip model: a built-in name, a JSON model config file, or local-dir:FOLDER."),
    clip_pretrained: str = typer.Option("openai", "--clip-pretrained", help="open_clip pretrained tag, a checkpoint file, or none (random weights, tests only)."),
    top_n: int = typer.Option(15, "--top-n", help="Words kept per image (MSM4SR uses 15)."),
    vocab: Path | None = typer.Option(None, "--vocab", help="Word list, one per line (default: the CLIP tokenizer's whole alphabetic words)."),
    vocab_cache: Path | None = typer.Option(None, "--vocab-cache", help="Vocabulary embeddings artifact to reuse or write (default: in $MMREC_CACHE or ~/.cache/mmrec)."),
    template: str = typer.Option("{}", "--template", help="Text around each word before encoding, e.g. 'a photo of {}'."),
    image_root: Path | None = typer.Option(None, "--image-root", help="Folder that image paths are relative to (default: the items file's folder)."),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="Allow absolute image paths and paths leading out of the image root."),
    max_images: int = typer.Option(8, "--max-images", help="Images captioned per item (0 = all)."),
    max_pixels: int = typer.Option(MAX_PIXELS, "--max-pixels", help="Skip images with more pixels than this (decompression-bomb guard)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch."),
    device: str = typer.Option(DEVICE, "--device", help=DEVICE_HELP),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0 = torch's default)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUTPUT.partial/."),
    max_batches: int = typer.Option(0, "--max-batches", help="Encode at most N image batches in this run, then stop (continue with --resume)."),
) -> None:
    """Describe each image by its top-N CLIP vocabulary words; feed the output to `mmrec extract --text bert --per-sentence --as image`."""
    from mmrec_cli.features.caption import Options
    from mmrec_cli.features.caption import caption as run
    from mmrec_cli.features.extract import Hooks
    from mmrec_cli.io.atomic import check_distinct, check_writable

    check_writable(output)  # before the CLIP model is loaded (OUTPUT.partial/ lies in the same folder)
    if vocab_cache and not vocab_cache.exists():  # an existing cache may be only read, from a read-only folder
        check_writable(vocab_cache, "--vocab-cache")
    check_distinct({"-o": output, "--vocab-cache": vocab_cache}, {"ITEMS": items, "--vocab": vocab})  # a stale cache is rewritten
    opts = Options(
        clip_model=clip_model, clip_pretrained=clip_pretrained, top_n=top_n, vocab=str(vocab) if vocab else None,
        vocab_cache=str(vocab_cache) if vocab_cache else None, template=template,
        image_root=str(image_root) if image_root else None, allow_outside_root=allow_outside_root,
        max_images=max_images, max_pixels=max_pixels, batch_size=batch_size, device=device, threads=threads,
        resume=resume, max_batches=max_batches,
    )
    run(items, output, opts, recorded(), Hooks(note=say, bar=progress))
