import subprocess
import sys

import pytest

# A step that allocates and frees ~29 MiB in four arrays, as a training step does tensors;
# the page faults of 20 steps after 3 of warm-up, in a process of its own.
STEPS = """
import resource, sys
import numpy as np
from mpmae.train.memory_reuse import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
def step():
    arrays = [np.ones(n << 20, np.uint8) for n in (10, 10, 6, 3)]
    del arrays
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_freed_memory_is_reused_without_new_page_faults():
    default, tuned = faults("default"), faults("tuned")
    assert default > 0  # glibc returned the freed memory and faulted it back in
    assert tuned <= default / 10

