"""Keeps the memory a training process frees for its next batch, instead of returning it.

Every step allocates the same large tensors again (the normalised batch, activations).
glibc's malloc serves them from fresh pages or from its heap depending on a threshold it
moves as the process runs, and trims freed memory at the top of the heap, so a process
can settle into faulting in every new page, and two runs of the same script can differ
widely in page faults and CPU (measured: docs/ray-2.60.md). Fixing the threshold at its
largest and trimming only above 1 GiB keeps freed memory in the heap for the next batch;
a process's footprint stays near its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from mpmae.data.stream.worker_memory import MMAP_THRESHOLD, TRIM_THRESHOLD

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Tune this process's malloc; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
