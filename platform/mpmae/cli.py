"""``mpmae <verb>``: the command line. Each verb parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from dataclasses import asdict

from mpmae.config_flags import add_config_flags, add_help_config, config_from_args
from mpmae.data.inspect_config import InspectConfig
from mpmae.data.sources.config import ConvertConfig, SynthConfig, SynthGeoBench2Config
from mpmae.errors import MpmaeError, Preempted
from mpmae.mmearth_ckpt.config import ImportConfig
from mpmae.redact import redact_log_records, redact_text


def _data_synth(args: argparse.Namespace) -> int:
    from mpmae.data.sources.synth import synthesize

    synthesize(args.dest, **asdict(config_from_args(SynthConfig, args)))
    return 0


def _data_synth_geobench2(args: argparse.Namespace) -> int:
    from mpmae.data.sources.synth_geobench2 import write_geobench2_sets

    write_geobench2_sets(args.dest, **asdict(config_from_args(SynthGeoBench2Config, args)))
    return 0


def _data_convert(args: argparse.Namespace) -> int:
    from mpmae.data.sources.convert import convert_mmearth

    convert_mmearth(args.src, args.dest, **asdict(config_from_args(ConvertConfig, args)))
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from mpmae.data.inspect import inspect_dataset

    print(inspect_dataset(args.uri, **asdict(config_from_args(InspectConfig, args))))
    return 0


def _data_verify(args: argparse.Namespace) -> int:
    from mpmae.data.verify import verify_dataset

    print(verify_dataset(args.uri))
    return 0


def _import_mmearth(args: argparse.Namespace) -> int:
    from mpmae.mmearth_ckpt.importer import import_mmearth

    import_mmearth(args.checkpoint, args.dest, config_from_args(ImportConfig, args))
    return 0


def _add_import_mmearth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-mmearth", help="an MMEarth authors' checkpoint (.pth) → an encoder release",
        description="Turn an official MMEarth-train pretraining checkpoint (FCMAE with "
                    "MinkowskiEngine layers, e.g. pt-all_mod_atto_1M_64_uncertainty_56-8/"
                    "checkpoint-199.pth) into a release folder that mpmae evaluate and "
                    "mpmae.load_encoder open. Read with torch's safe loader only; no "
                    "MinkowskiEngine needed.")
    p.add_argument("checkpoint", help="the .pth file")
    p.add_argument("dest", help="release folder to write")
    add_config_flags(p, ImportConfig)
    p.set_defaults(func=_import_mmearth)


def _configured(args: argparse.Namespace, schema: type):
    """The loaded config — failing before any cluster work — or None after printing the
    schema (--help-config), which imports no torch: the run's modules load only to run."""
    from mpmae.config import describe, load_config

    if args.help_config:
        print(describe(schema))
        return None
    return load_config(schema, args.config, args.set)


def _pretrain(args: argparse.Namespace) -> int:
    from mpmae.train.config import PretrainConfig

    if (cfg := _configured(args, PretrainConfig)) is not None:
        from mpmae.pipeline.pretrain import pretrain

        pretrain(cfg)
    return 0


def _tune(args: argparse.Namespace) -> int:
    from mpmae.tune.config import TuneConfig

    if (cfg := _configured(args, TuneConfig)) is not None:
        from mpmae.tune.sweep import sweep

        sweep(cfg)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from mpmae.config import load_config
    from mpmae.evaluate import EvaluateConfig, evaluate_arguments

    # The verb's own flags are shorthands for config keys, applied after --set.
    shorthands = [f"{key}={value}" for key, value in (
        ("protocol", args.protocol), ("seeds", args.seeds), ("results", args.results),
        ("partitions", json.dumps(args.partition) if args.partition else None),
    ) if value is not None]
    evaluate_arguments(args.targets,
                       load_config(EvaluateConfig, args.config, [*args.set, *shorthands]))
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from mpmae.evaluate import EvaluateConfig

    p = sub.add_parser(
        "evaluate", usage="mpmae evaluate [options] ENCODER [ENCODER …] DATASET [DATASET …]",
        help="score encoders on GEO-Bench datasets (kNN, linear or logistic probe, "
             "fine-tune)",
        description="Evaluate encoders downstream: GEO-Bench datasets read safely, bands "
                    "matched by name, kNN, a linear probe (MMEarth's recipe) or a converged "
                    "logistic probe on cached embeddings, or a full "
                    "fine-tune (U-Net for segmentation), seeds and 95 % intervals, "
                    "label-efficiency partitions; results on the console, in MLflow and "
                    "optionally as JSON. Several encoders are compared in one table (best per "
                    "dataset marked; GEO-Bench's normalised score when the benchmark folder "
                    "holds normalizer.json). GEO-Bench-2 datasets too: then its leaderboard's "
                    "capability table and results_and_parameters.csv (docs/evaluate.md).")
    p.add_argument("targets", nargs="+", metavar="ENCODER/DATASET",
                   help="the encoders, then the datasets. An encoder: a release folder "
                        "(config.json), models:/NAME/VERSION, runs:/ID/encoder, a "
                        "pretraining run name, or random:SIZE. A dataset: a GEO-Bench "
                        "dataset folder (task_specs.pkl), a GEO-Bench-2 one (*.tortilla "
                        "files, the folder named after its dataset: benv2, so2sat, …), or a "
                        "benchmark folder of them")
    p.add_argument("--protocol", choices=["knn", "linear", "logistic", "finetune"],
                   default=None, help="shorthand for --set protocol=… (default: linear, "
                                      "MMEarth's recipe; logistic: a converged probe)")
    p.add_argument("--partition", action="append", default=None, metavar="P",
                   help="partition to train on, repeatable (default: default), e.g. 0.01x_train")
    p.add_argument("--seeds", type=int, default=None, help="shorthand for --set seeds=N")
    p.add_argument("--results", default=None, metavar="FILE.json",
                   help="also write the results as JSON here")
    p.add_argument("--config", default=None, help="YAML config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set linear.epochs=50 (repeatable)")
    add_help_config(p, EvaluateConfig)
    p.set_defaults(func=_evaluate)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML config (see jobs/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.size=tiny (repeatable)")
    p.add_argument("--help-config", action="store_true",
                   help="list every config key with its default and meaning")


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain", help="pretrain MP-MAE (no config: the embedded demo on this machine)",
        description="Pretrain MP-MAE with Ray Train. Without --config: the embedded demo — a "
                    "synthetic dataset made on first use, local Ray, MLflow in a local SQLite "
                    "file. Re-run with the same run_name to resume.")
    _add_config_args(p)
    p.set_defaults(func=_pretrain)


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune", help="search pretext sets, weighting, lr and mask ratio with Ray Tune",
        description="Run a Ray Tune sweep of pretraining trials stopped early on a linear "
                    "probe (ASHA) and ranked by it or, with objective.dataset, by each "
                    "finished trial's kNN/linear score on a GEO-Bench dataset; one nested "
                    "MLflow run per trial, the best encoder registered. Re-run with the "
                    "same sweep_name to resume.")
    _add_config_args(p)
    p.set_defaults(func=_tune)


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="create, convert, inspect and verify tile datasets")
    verbs = data.add_subparsers(dest="data_verb", required=True)

    p = verbs.add_parser("synth", help="write a synthetic world (+ labelled downstream set)")
    p.add_argument("dest", help="folder or s3://bucket/prefix")
    add_config_flags(p, SynthConfig)
    p.set_defaults(func=_data_synth)

    p = verbs.add_parser("synth-geobench2",
                         help="write tiny GEO-Bench-2 datasets (so2sat, benv2, cloudsen12, "
                              "dynamic_earthnet, biomassters, fotw, pastis)",
                         description="Write the synthetic world's tiles as seven GEO-Bench-2 "
                                     "datasets in the benchmark's tortilla files, one folder "
                                     "each under DEST, for mpmae evaluate ENCODER DEST.")
    p.add_argument("dest", help="a local folder")
    add_config_flags(p, SynthGeoBench2Config)
    p.set_defaults(func=_data_synth_geobench2)

    p = verbs.add_parser("convert", help="official MMEarth release (HDF5 + JSON) → tile format")
    p.add_argument("src", help="folder holding data_*.h5 and its three JSON files, or the .h5")
    p.add_argument("dest", help="folder or s3://bucket/prefix")
    add_config_flags(p, ConvertConfig)
    p.set_defaults(func=_data_convert)

    p = verbs.add_parser("inspect", help="schema, counts, statistics and a PNG of tiles")
    p.add_argument("uri", help="dataset folder or s3://bucket/prefix")
    add_config_flags(p, InspectConfig)
    p.set_defaults(func=_data_inspect)

    p = verbs.add_parser("verify", help="read every shard back: sizes, hashes, page checksums",
                         description="Read the whole dataset: dataset.json's fields and "
                                     "statistics, every shard's size and SHA-256, every page "
                                     "with its checksum, each footer against the schema. "
                                     "Exit 2 naming every damaged shard.")
    p.add_argument("uri", help="dataset folder or s3://bucket/prefix")
    p.set_defaults(func=_data_verify)


def _submit(args: argparse.Namespace) -> int:
    from mpmae.cluster.submit import default_address, submit

    return submit(default_address(args.address, os.environ), [args.verb, *args.args],
                  working_dir=args.working_dir, wait=args.wait, token=args.token,
                  forward_secrets=args.forward_secrets, max_upload_mb=args.max_upload_mb)


def _add_submit(sub: argparse._SubParsersAction) -> None:
    from mpmae.cluster.submit import DEFAULT_ADDRESS
    from mpmae.cluster.upload import DEFAULT_MAX_UPLOAD_MB

    p = sub.add_parser(
        "submit", help="run an mpmae verb on a Ray cluster as a Ray Job",
        description="Submit `mpmae VERB ARGS` (e.g. pretrain --config FILE) as a Ray Job. "
                    "Options for submit go before the verb.")
    p.add_argument("--address", default=None,
                   help="Job API (dashboard) address, e.g. http://HEAD:8265; default: "
                        f"$RAY_API_SERVER_ADDRESS, an http:// $RAY_ADDRESS, else {DEFAULT_ADDRESS}")
    p.add_argument("--working-dir", default=".",
                   help="project folder to upload (default: the current folder)")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="print the job id and how to follow it, then return")
    p.add_argument("--token", default=None,
                   help="Ray auth token (visible in the process list; prefer RAY_AUTH_TOKEN "
                        "or ~/.ray/auth_token)")
    p.add_argument("--forward-secrets", action="store_true",
                   help="also copy AWS/MLflow credentials into the job's environment, where "
                        "Ray stores and shows them (private dev clusters only)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help="refuse to upload more than this many MiB of project files "
                        f"(default {DEFAULT_MAX_UPLOAD_MB:g})")
    p.add_argument("verb", help="the mpmae verb to run on the cluster (pretrain, tune, evaluate)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the verb")
    p.set_defaults(func=_submit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpmae", description="Pretrain MMEarth MP-MAE geospatial foundation models on Ray.")
    sub = parser.add_subparsers(dest="verb", required=True)
    _add_data(sub)
    _add_pretrain(sub)
    _add_tune(sub)
    _add_evaluate(sub)
    _add_import_mmearth(sub)
    _add_submit(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redact_log_records()
    sys.excepthook = _redacted_traceback
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MpmaeError as error:
        # Its message says what went wrong and what to do; a traceback would bury it. Any
        # other error (torch, CUDA, a bug) keeps its traceback: that is what one debugs with.
        print(f"mpmae: {'' if isinstance(error, Preempted) else 'error: '}{error}",
              file=sys.stderr)
        return error.exit_code


def _redacted_traceback(kind, error, tb) -> None:
    # Any other error keeps its traceback (what one debugs with), but a library's message
    # may quote a URI with its password: the interpreter prints it through this hook.
    text = "".join(traceback.format_exception(kind, error, tb))
    print(redact_text(text), file=sys.stderr, end="")


if __name__ == "__main__":
    sys.exit(main())
