"""open_clip models: loading offline (built-in name + pretrained tag or checkpoint file, a JSON model config, or
local-dir:FOLDER), and the image and text towers as encoders for the batch runner.

The text tower of a standard CLIP is causal and pools at the end-of-text token, so tokens after it change
nothing: batches are cut to their longest text instead of the full 77-token context (vocabulary words are 3-5
tokens, so this is many times faster and gives the same vectors up to float rounding).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrec_cli.errors import bad_input, not_found
from mmrec_cli.features.hub import offline_hint

RANDOM = ("none", "random", "")


@dataclass
class Clip:
    model: object
    preprocess: object
    tokenizer: object
    device: str
    info: dict
    dtype: object = None  # the torch dtype of the weights (None: float32)

    @property
    def dim(self) -> int:
        return int(self.info["dim"])


def load_clip(model_name: str, pretrained: str | None, device: str, numbers: str = "fp32") -> Clip:
    """An open_clip model in eval mode on `device`, its weights in `numbers` (fp32, bf16 or fp16:
    mmrec_cli/features/precision.py), with its inference transform and tokenizer."""
    import open_clip
    import torch

    from mmrec_cli.features import precision

    name = _register(model_name)
    tag = (pretrained or "").strip()
    identity, quick_gelu = _weights(name, tag)
    if tag.lower() in RANDOM:
        torch.manual_seed(0)  # random weights, the same on every run (tests, benchmarks)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=None if tag.lower() in RANDOM else tag, device=device, force_quick_gelu=quick_gelu, load_weights=True
        )
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, OSError, ValueError, KeyError, AssertionError) as err:
        raise _load_error(model_name, tag, err) from err
    model.eval()
    dim = int(getattr(model, "embed_dim", 0) or _probe_dim(model, device))
    model.to(precision.dtype(numbers))
    info = {"encoder": "clip", "model": model_name, "pretrained": tag or "none", **identity, "dim": dim, "precision": numbers}
    return Clip(model, preprocess, tokenizer, device, info, precision.dtype(numbers))


def _register(model_name: str) -> str:
    """The open_clip name to create: a JSON model config file is registered under its file name."""
    import open_clip

    if model_name.endswith(".json"):
        path = Path(model_name)
        if not path.is_file():
            raise not_found(f"--clip-model {model_name}: no such model config file")
        open_clip.add_model_config(path)
        if path.stem not in open_clip.list_models():
            raise bad_input(f"--clip-model {model_name}: not an open_clip model config (needs embed_dim, vision_cfg, text_cfg)")
        return path.stem
    if model_name.startswith(("hf-hub:", "local-dir:")):
        return model_name
    if model_name.replace("/", "-") not in open_clip.list_models():
        raise not_found(f"--clip-model {model_name}: unknown open_clip model; give a built-in name (e.g. ViT-B-32), a JSON model config file, or local-dir:FOLDER")
    return model_name


def _weights(name: str, tag: str) -> tuple[dict, bool]:
    """What names the weights ({"weights": file hash} or a tag) and whether the tag was trained with QuickGELU."""
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    from mmrec_cli.io.artifacts import fingerprint_file

    if tag.lower() in RANDOM:
        return {"weights": "random (seed 0)"}, False
    if name.startswith("local-dir:"):
        return {"weights": _dir_weights(Path(name[len("local-dir:") :]))}, False
    if name.startswith("hf-hub:"):
        return {"weights": name}, False
    if os.path.isfile(tag):
        return {"weights": fingerprint_file(tag)}, False
    cfg = get_pretrained_cfg(name, tag)
    if not cfg:
        from open_clip import list_pretrained_tags_by_model

        tags = ", ".join(list_pretrained_tags_by_model(name)) or "none known"
        raise not_found(f"--clip-pretrained {tag}: neither a checkpoint file nor a pretrained tag of {name} (tags: {tags}; or 'none' for random weights)")
    try:
        path = download_pretrained(cfg)
    except Exception as err:  # network, cache and hub errors all mean: not available here
        raise not_found(offline_hint(f"CLIP weights {name}/{tag}", "a checkpoint file with --clip-pretrained PATH")) from err
    return {"weights": fingerprint_file(path)}, bool(cfg.get("quick_gelu", False))


def _dir_weights(folder: Path) -> str | None:
    from mmrec_cli.io.artifacts import fingerprint_file

    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return fingerprint_file(folder / name)
    return None


def _load_error(model_name: str, tag: str, err: Exception):
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, (AssertionError, KeyError)) or "state_dict" in text or "size mismatch" in str(err) or "Missing key" in str(err):
        return bad_input(f"--clip-pretrained {tag}: the checkpoint does not fit --clip-model {model_name} ({text[:200]})")
    if model_name.startswith("hf-hub:"):
        return not_found(offline_hint(f"CLIP model {model_name}", "local-dir:FOLDER or a checkpoint file"))
    return bad_input(f"--clip-model {model_name}: cannot be loaded ({text[:200]})")


def _probe_dim(model, device: str) -> int:
    import torch

    size = model.visual.preprocess_cfg.get("size", 224)
    size = size if isinstance(size, (tuple, list)) else (size, size)
    with torch.inference_mode():
        return int(model.encode_image(torch.zeros(1, 3, *size, device=device)).shape[-1])


@dataclass
class ClipText:
    """The text tower of a CLIP model as a batch-runner encoder."""

    clip: Clip
    normalize: bool
    info: dict

    @property
    def dim(self) -> int:
        return self.clip.dim

    def prepare(self, texts: list[str], chunk: int = 8192) -> tuple[list, np.ndarray]:
        rows: list = []
        short = short_text_tower(self.clip) is not None
        for start in range(0, len(texts), chunk):
            tokens = self.clip.tokenizer(texts[start : start + chunk])
            lengths = (tokens.argmax(1) + 1).tolist() if short else [tokens.shape[1]] * len(tokens)  # end-of-text has the top id
            rows.extend(tokens[r, :n].clone() for r, n in enumerate(lengths))
        return rows, np.array([len(r) for r in rows], dtype=np.int64)

    def load(self, rows: list):
        import torch

        width = max(len(r) for r in rows)
        out = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def encode(self, tokens) -> tuple[np.ndarray, None, list]:
        import torch

        with torch.inference_mode():
            out = encode_text(self.clip, tokens.to(self.clip.device)).float()  # normalised in float32
            if self.normalize:
                out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy(), None, []


def text_encoder(clip: Clip, normalize: bool) -> ClipText:
    info = dict(clip.info, tower="text", normalize=normalize)
    return ClipText(clip, normalize, info)


def short_text_tower(clip: Clip):
    """(tower, pool type, eos id) when the text tower can run on cut contexts, else None."""
    from open_clip import CoCa, CustomTextCLIP
    from open_clip.tokenizer import SimpleTokenizer

    model = clip.model
    tower = model.text if isinstance(model, (CustomTextCLIP, CoCa)) else model  # CLIP holds its text tower inline
    pool_type = getattr(tower, "pool_type", getattr(tower, "text_pool_type", None))
    causal = getattr(tower, "attn_mask", None) is not None
    plain = getattr(tower, "cls_emb", None) is None and not getattr(tower, "use_pad_mask", False)
    if not (isinstance(clip.tokenizer, SimpleTokenizer) and causal and plain and pool_type in ("argmax", "eos", "first")):
        return None
    if not all(hasattr(tower, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final")):
        return None
    return tower, pool_type, getattr(tower, "eos_id", getattr(tower, "text_eos_id", None))


def encode_text(clip: Clip, tokens):
    """Text features of token rows (zero-padded); rows shorter than the context run on the cut context."""
    import torch
    from open_clip.transformer import text_global_pool

    short = short_text_tower(clip)
    context = int(clip.model.context_length if hasattr(clip.model, "context_length") else tokens.shape[1])
    if short is None or tokens.shape[1] >= context:
        if tokens.shape[1] < context:
            tokens = torch.nn.functional.pad(tokens, (0, context - tokens.shape[1]))
        return clip.model.encode_text(tokens)
    tower, pool_type, eos_id = short
    n = tokens.shape[1]
    cast = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast) + tower.positional_embedding[:n].to(cast)
    x = tower.ln_final(tower.transformer(x, attn_mask=tower.attn_mask[:n, :n]))
    x = text_global_pool(x, tokens, pool_type, eos_token_id=eos_id)
    proj = tower.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
