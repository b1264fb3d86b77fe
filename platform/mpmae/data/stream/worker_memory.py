"""The read tasks' worker processes keep the memory they free for their next block.

A read task decodes row groups and scatters them into a fresh block, block after block:
the same large allocations again and again. glibc's malloc moves its mmap threshold as a
process runs and trims freed memory at the top of its heap, and pyarrow's mimalloc pool
returns freed pages to the system after a delay, so a worker can settle into faulting in
every page of every block. Fixed at glibc's largest threshold, trimming only above 1 GiB,
and mimalloc never purging, the read tasks' decode and scatter cost what they cost in one
plain process. Measured beside the stream with Ray's default workers, in alternating
passes (``benchmarks/bench_data.py --compare no_memory_reuse``, docs/scale.md §4).

Environment variables, not ``mallopt`` in the task: glibc and mimalloc read them when the
process starts, and Ray starts the read tasks' workers with them (a runtime env of their
own). The training process tunes its own malloc (:mod:`mpmae.train.memory_reuse`).
"""

from __future__ import annotations

MMAP_THRESHOLD = 32 << 20  # glibc's largest; bigger blocks are mapped for themselves
TRIM_THRESHOLD = 1 << 30
READ_TASK_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
    "MIMALLOC_PURGE_DELAY": "-1",
}
