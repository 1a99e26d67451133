"""Loading transformers models offline, with one actionable line when a model cannot be found."""

from __future__ import annotations

import os
from pathlib import Path

from mmrec_cli.errors import bad_input, not_found


def offline_hint(what: str, local: str) -> str:
    return (
        f"{what} cannot be found offline; give {local}, or set HF_HUB_OFFLINE=0 "
        "on a machine with network access to download it into the Hugging Face cache"
    )


def looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or os.sep in ref.rstrip(os.sep) and Path(ref).parent.exists()


def from_pretrained(ref: str, option: str):
    """(tokenizer, model) of a local folder or hub id, in float32, without progress bars."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if looks_like_path(ref) and not Path(ref).expanduser().exists():
        raise not_found(f"{option} {ref}: no such folder; give a model folder (config.json, weights, tokenizer files) or a hub id")
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref)
        model = AutoModel.from_pretrained(ref, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as err:
        if Path(ref).is_dir():
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise bad_input(f"{option} {ref}: not a usable transformers model folder ({first})") from err
        raise not_found(offline_hint(f"text model '{ref}'", f"a local model folder with {option} PATH")) from err
    return tokenizer, model
