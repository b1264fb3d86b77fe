"""Ray Job entrypoint for `mpmae pretrain`: `python jobs/pretrain.py --config FILE [--set k=v]`.

`mpmae submit … pretrain ARGS` runs this file on the cluster; locally it equals `mpmae pretrain`.
"""

import sys

from mpmae.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
