"""The number format encoders compute in: `extract --precision auto|fp32|bf16|fp16`.

Vectors are always stored as float32; the precision is the format of the weights and activations inside the
encoder, and pooling and normalisation run in float32 on its output. `auto` takes bf16 only where the hardware
computes it natively (a CUDA GPU that supports it; a CPU with AMX or AVX512-BF16, read from /proc/cpuinfo) and
fp32 elsewhere: on a CPU without those instructions (AVX2 only) bf16 runs slower than fp32. The MiniLM's bf16
vectors agree with its fp32 ones to the cosine given in docs/data.md (`bench/extract_bench.py --precision bf16`
measures it); the choice is recorded in the features' metadata (`precision`) and is part of the resume key.
"""

from __future__ import annotations

from pathlib import Path

from mmrec_cli.errors import bad_input

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that compute bf16 natively


def resolve(precision: str, device: str) -> str:
    """fp32, bf16 or fp16 for `precision` on `device` (a resolved torch device string)."""
    import torch

    if precision not in PRECISIONS:
        raise bad_input(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if dev.type == "cpu" and cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:  # not Linux: no evidence, the safe choice
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(f in flags for f in _NATIVE_BF16_FLAGS)
    return False


def dtype(precision: str):
    """The torch dtype of a resolved precision."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
