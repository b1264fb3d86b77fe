"""Ray Job entrypoint for `mpmae tune`: `python jobs/tune.py --config FILE [--set k=v]`.

`mpmae submit … tune ARGS` runs this file on the cluster; locally it equals `mpmae tune`.
"""

import sys

from mpmae.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
