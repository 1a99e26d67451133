"""glibc's mmap threshold, pinned by the training commands of a model that asks for it (`ModelSpec.mmap_threshold`)
so that freed activations go back to the system.

glibc serves an allocation above its mmap threshold (128 KiB at start) with a mapping of its own, returned to the
system on free; smaller ones come from its heap, which keeps freed blocks. The threshold is dynamic: each freed
mapping raises it to that mapping's size (up to 32 MiB). A training step allocates and frees activations of many
megabytes, so after a few steps they all come from the heap, and a heap holds on to what it has once held and
fragments: measured with `bench/missrec_memory.py`, `pretrain missrec` on the example data peaked at 2.3 GB of
resident memory where one step needs about 1.2 GB. Pinning the threshold (`mallopt(M_MMAP_THRESHOLD, n)` also
turns the dynamic raise off) keeps blocks of n bytes and more out of the heap, at the cost of mapping and faulting
in fresh pages for each of them: 20 % more CPU time there, and for a model whose heap does not fragment that much
the cost without the gain (UniSRec's pre-training: 21 % more time for 2 % less memory), so a model asks for it in
its spec. The numbers are the same bits either way.

`MALLOC_MMAP_THRESHOLD_` in the environment is glibc's own setting of the same threshold; where it is set, it wins
and nothing is changed here. Other C libraries (macOS, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def pin_mmap_threshold(nbytes: int | None) -> bool:
    """Fix glibc's mmap threshold at `nbytes` for the rest of the process. Returns whether it was set: False for
    None, where MALLOC_MMAP_THRESHOLD_ is in the environment, or where the C library is not glibc."""
    if nbytes is None or "MALLOC_MMAP_THRESHOLD_" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, nbytes) == 1
