"""Ray Job entrypoint for `mpmae evaluate`: `python jobs/evaluate.py ENCODER DATASET … [--set k=v]`.

`mpmae submit … evaluate ARGS` runs this file on the cluster (the datasets' folders must be
readable there); locally it equals `mpmae evaluate`.
"""

import sys

from mpmae.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
