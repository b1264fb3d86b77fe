"""Bad inputs through the command line, as a user meets them: each must end in one line
``mpmae: error: …`` naming the file or field (exit code 2), and leave good data intact.

    python benchmarks/bad_inputs.py            # JSON: every case and the counts

Runs in-process on a tiny synthetic world (no Ray: every case is refused before any
cluster work), in a temporary folder, in under a minute on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from mpmae.cli import main
from mpmae.data.sources.synth import synthesize
from mpmae.data.sources.synth_geobench import CLASSIFICATION, GEOBENCH_DIR

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # a fresh copy of the world → mpmae's argv
    names: str  # what the one-line error must mention
    intact: Callable[[Path], bool] | None = None  # good data still good afterwards


def _manifest_edit(edit: Callable[[dict], object], replace: bool = False
                   ) -> Callable[[Path], list[str]]:
    """Edit dataset.json in place (or, with ``replace``, write what ``edit`` returns)."""
    def setup(world: Path) -> list[str]:
        path = world / "dataset.json"
        doc = json.loads(path.read_text())
        result = edit(doc)
        path.write_text(json.dumps(result if replace else doc))
        return ["data", "inspect", str(world)]
    return setup


def _first_shard(world: Path) -> Path:
    doc = json.loads((world / "dataset.json").read_text())
    return world / doc["splits"]["train"][0]["path"]


def _flip_a_byte(world: Path) -> list[str]:
    shard = _first_shard(world)
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x10
    shard.write_bytes(bytes(data))
    return ["data", "verify", str(world)]


def _truncate(world: Path) -> list[str]:
    shard = _first_shard(world)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return ["data", "inspect", str(world)]


def _drop_column(world: Path) -> list[str]:
    shard = _first_shard(world)
    table = pq.read_table(shard)
    pq.write_table(table.drop_columns([table.column_names[-1]]), shard)
    return ["data", "inspect", str(world)]


def _config_file(text: str | bytes) -> Callable[[Path], list[str]]:
    def setup(world: Path) -> list[str]:
        path = world.parent / "bad-config.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["pretrain", "--config", str(path)]
    return setup


def _pretrain_set(*pairs: str) -> Callable[[Path], list[str]]:
    def setup(world: Path) -> list[str]:
        return ["pretrain", *[a for p in pairs for a in ("--set", p)]]
    return setup


def _hostile_task_specs(world: Path) -> list[str]:
    dataset = world / GEOBENCH_DIR / CLASSIFICATION
    (dataset / "task_specs.pkl").write_bytes(pickle.dumps(_Exploit()))
    return ["evaluate", "random:atto", str(dataset), "--protocol", "knn"]


class _Exploit:
    """Unpickling this would run a shell command: the reader must refuse it."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/mpmae-bad-input-pwned",))


def _rerun_synth(world: Path) -> list[str]:
    return ["data", "synth", str(world), "--tiles", "48", "--size", "16"]


def _world_still_verifies(world: Path) -> bool:
    return _run(["data", "verify", str(world)])[0] == 0


def _unwritable_dest(world: Path) -> list[str]:
    # A file where the destination's folder should be: fails even for root, unlike chmod.
    (world.parent / "a-file").write_text("in the way")
    return ["data", "synth", str(world.parent / "a-file" / "w"), "--tiles", "8", "--size", "16"]


@contextlib.contextmanager
def _env(**values: str):
    import os

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


CASES = [
    Case("synth --tiles 0", lambda w: ["data", "synth", str(w.parent / "n"), "--tiles", "0"],
         "tiles"),
    Case("synth --tiles-per-shard 0", lambda w: ["data", "synth", str(w.parent / "n"),
                                                 "--tiles-per-shard", "0"], "--tiles-per-shard"),
    Case("synth --downstream-tiles -5", lambda w: ["data", "synth", str(w.parent / "n"),
                                                   "--downstream-tiles", "-5"],
         "--downstream-tiles"),
    Case("synth re-run with other options", _rerun_synth, "--overwrite", _world_still_verifies),
    Case("local write failure", _unwritable_dest, "a-file"),
    Case("dataset.json not an object", _manifest_edit(lambda d: [d], replace=True),
         "dataset.json"),
    Case("empty splits", _manifest_edit(lambda d: d.update(splits={})), "splits"),
    Case("empty split", _manifest_edit(lambda d: d["splits"].update(val=[])), "splits.val"),
    Case("stats without std", _manifest_edit(lambda d: d["stats"]["aster"].pop("std")),
         "stats.aster.std"),
    Case("stats with the wrong band count",
         _manifest_edit(lambda d: d["stats"]["sentinel1"].update(mean=[0.0])),
         "stats.sentinel1.mean"),
    Case("non-integer tile_size", _manifest_edit(lambda d: d.update(tile_size="16")),
         "tile_size"),
    Case("shard path escaping the dataset",
         _manifest_edit(lambda d: d["splits"]["train"][0].update(path="../../x.parquet")),
         "splits.train[0]"),
    Case("split name escaping the dataset",
         _manifest_edit(lambda d: d["splits"].update({"../up": d["splits"].pop("val")})),
         "../up"),
    Case("no dataset.json", lambda w: ["data", "inspect", str(w.parent / "nothing-here")],
         "dataset.json"),
    Case("truncated shard", _truncate, ".parquet"),
    Case("shard missing a column", _drop_column, ".parquet"),
    Case("flipped byte in a shard", _flip_a_byte, ".parquet"),
    Case("unreachable store", lambda w: ["data", "inspect", "s3://bucket/x"], "127.0.0.1:9"),
    Case("unknown config key", _pretrain_set("model.sise=atto"), "model.sise"),
    Case("duplicate YAML key", _config_file("model:\n  size: atto\n  size: tiny\n"), "size"),
    Case("binary config file", _config_file(b"\x89PNG\r\n\x1a\n\x00\x00"), "bad-config.yaml"),
    Case("inf learning rate", _pretrain_set("optim.base_lr=inf"), "optim.base_lr"),
    Case("nan mask ratio", _pretrain_set("model.mask_ratio=nan"), "model.mask_ratio"),
    Case("negative seed", _pretrain_set("train.seed=-1"), "train.seed"),
    Case("mask ratio giving a zero loss", _pretrain_set("model.mask_ratio=0.0"),
         "model.mask_ratio"),
    Case("registry name MLflow refuses", _pretrain_set("mlflow.register_as=a/b"),
         "mlflow.register_as"),
    Case("hostile GEO-Bench pickle", _hostile_task_specs, "task_specs.pkl"),
]


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own refusals
            code = int(e.code or 0)
    return code, err.getvalue()


def _try(case: Case, pristine: Path, tmp: Path) -> dict:
    world = tmp / case.name.replace(" ", "_").replace("/", "_") / "world"
    shutil.copytree(pristine, world)
    code, err = _run(case.setup(world))
    one_line = err.startswith("mpmae: error: ") and err.count("\n") == 1
    clear = code == 2 and one_line and case.names in err
    intact = case.intact(world) if case.intact else None
    return {"case": case.name, "exit_code": code, "clear": clear,
            "intact": intact, "message": err.strip()[:300]}


def main_bench() -> dict:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pristine = tmp / "pristine"
        synthesize(str(pristine), tiles=32, size=16, downstream_tiles=20, progress=lambda _: None)
        # The unreachable store's endpoint: a closed loopback port, keys that go nowhere.
        with _env(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="bench",
                  AWS_SECRET_ACCESS_KEY="bench-secret"):
            results = [_try(case, pristine, tmp) for case in CASES]
    pwned = Path("/tmp/mpmae-bad-input-pwned").exists()
    lost = [r["case"] for r in results if r["intact"] is False]
    return {"machine": machine(), "tried": len(results),
            "clear_error": sum(r["clear"] for r in results),
            "unclear": [r for r in results if not r["clear"]],
            "good_data_lost": lost, "code_ran_from_data": pwned, "cases": results}


if __name__ == "__main__":
    report = main_bench()
    print(json.dumps(report, indent=2))
    sys.exit(0 if not report["unclear"] and not report["good_data_lost"]
             and not report["code_ran_from_data"] else 1)
