"""``mpmae pretrain`` on the driver: prepare data and run bookkeeping, then fit a TorchTrainer.

A run lives in ``<storage.root>/<run_name>/``: Ray Train's checkpoints, the run file and
config of :mod:`mpmae.track.run_folder` and, at the end, the ``encoder/`` release.
Re-running with the same run name resumes from the latest checkpoint.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from mpmae.cluster.connect import connect, on_a_cluster, require_shared_paths
from mpmae.config import ConfigError, cache_dir, override
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.errors import MpmaeError
from mpmae.redact import redact_text
from mpmae.storage import Location, resolve
from mpmae.track.run_folder import TrackedRun, tracked_run
from mpmae.train.config import PretrainConfig
from mpmae.train.export import RELEASE_DIR
from mpmae.train.resume import resume_position
from mpmae.train.step_plan import plan_steps
from mpmae.train.worker_spec import WorkerSpec


@dataclass
class RunResult:
    run_name: str
    run_dir: str
    encoder_uri: str
    mlflow_run_id: str
    tracking_uri: str
    steps: int


def pretrain(cfg: PretrainConfig, progress=print) -> RunResult:
    """Run (or resume) pretraining as configured; returns where everything landed."""
    import ray

    from mpmae.track.runs import tracking_uri
    from mpmae.train.progress import ConsoleProgress

    cfg = resolved(cfg)
    dataset = open_dataset(cfg, progress)
    root = resolve(cfg.storage.root, cfg.storage.options())
    with tracked_run(root.join(cfg.run_name), cfg.mlflow, experiment=cfg.experiment,
                     name=cfg.run_name, config=cfg, model=cfg.model) as run:
        progress(("resuming" if run.resumed else "starting") +
                 f" run {run.name} in {run.folder.uri}")
        started_ray = connect(cfg.scaling.address)
        try:
            trainer, steps = build_trainer(cfg, dataset, root, run, [ConsoleProgress()],
                                           progress)
            trainer.fit()
        except BaseException as error:
            raise _explained(error, cfg, run.folder, progress) from None
        finally:
            if started_ray:
                ray.shutdown()
    result = RunResult(run.name, run.folder.uri, run.folder.join(RELEASE_DIR).uri,
                       run.mlflow_run_id, tracking_uri(cfg.mlflow), steps)
    if cfg.eval.datasets:
        _evaluate_encoder(cfg, progress)
    progress(_summary(result))
    return result


def _evaluate_encoder(cfg: PretrainConfig, progress) -> None:
    """``mpmae evaluate RUN_NAME eval.datasets``: the scores land in an evaluation run and,
    as ``downstream/…`` metrics, on this run."""
    from mpmae.evaluate.command.run import evaluate
    from mpmae.evaluate.config import EvaluateConfig
    from mpmae.track.config import MlflowConfig

    settings = EvaluateConfig(
        protocol=cfg.eval.protocol, seeds=cfg.eval.seeds, storage=cfg.storage,
        mlflow=MlflowConfig(tracking_uri=cfg.mlflow.tracking_uri, system_metrics=False),
        address=cfg.scaling.address)
    settings.validate()
    evaluate(cfg.run_name, list(cfg.eval.datasets), settings, progress)


def resolved(cfg: PretrainConfig) -> PretrainConfig:
    """Fill the embedded defaults in, so every process (and a resume) sees the same values."""
    from mpmae.track.runs import tracking_uri

    require_shared_paths(cfg.scaling.address,
                         {"data.uri": cfg.data.uri, "storage.root": cfg.storage.root})
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    data_uri = cfg.data.uri or str(
        cache_dir() / "data" / f"synth-{cfg.data.synth_tiles}x{cfg.data.tile_size}")
    cfg = override(cfg, {
        "run_name": cfg.run_name or f"{cfg.name}-{stamp}",
        "storage.root": cfg.storage.root or str(cache_dir() / "runs"),
        "data.uri": data_uri,
        "mlflow.tracking_uri": tracking_uri(cfg.mlflow),
    })
    if cfg.train.probe_every and not cfg.data.probe_uri:
        cfg = override(cfg, {"data.probe_uri": _default_probe_uri(cfg)})
    return cfg


def _default_probe_uri(cfg: PretrainConfig) -> str:
    """``<data.uri>/downstream``; the synthetic world writes it next to the tiles, which
    may happen only later (first use), so that dataset's folder counts as having one."""
    from mpmae.data.format.manifest import MANIFEST_NAME
    from mpmae.data.sources.synth import DOWNSTREAM_DIR

    downstream = resolve(cfg.data.uri, cfg.storage.options()).join(DOWNSTREAM_DIR)
    if _is_embedded_synthetic(cfg) or downstream.join(MANIFEST_NAME).exists():
        return downstream.uri
    raise ConfigError(f"train.probe_every needs a labelled set and {downstream.uri} holds "
                      "none: set data.probe_uri, or train.probe_every=0", key="data.probe_uri")


def _is_embedded_synthetic(cfg: PretrainConfig) -> bool:
    return cfg.data.uri.startswith(str(cache_dir() / "data" / "synth-"))


def open_dataset(cfg: PretrainConfig, progress) -> TileDataset:
    """Open the training data (the embedded synthetic world is generated on first use) and
    check it holds the pretext set's modalities."""
    from mpmae.data.format.manifest import MANIFEST_NAME

    options = cfg.storage.options()
    root = resolve(cfg.data.uri, options)
    if _is_embedded_synthetic(cfg) and not root.join(MANIFEST_NAME).exists():
        from mpmae.data.sources.synth import synthesize

        progress(f"generating the synthetic dataset in {root.uri} (first use only)")
        synthesize(cfg.data.uri, tiles=cfg.data.synth_tiles, size=cfg.data.tile_size,
                   storage=options, progress=lambda _: None)
    dataset = TileDataset.open(cfg.data.uri, options)
    if dataset.manifest.tile_size < cfg.model.img_size:
        raise ConfigError(f"the data's tiles are {dataset.manifest.tile_size}px, smaller than "
                          f"model.img_size {cfg.model.img_size}", key="model.img_size")
    dataset.require(cfg.model.pretext_set)
    return dataset


class RunFailedError(MpmaeError, RuntimeError):
    """A run stopped on one of our errors (bad data, config): the message says how to go on."""


def _explained(error: BaseException, cfg: PretrainConfig, run_dir: Location,
               progress) -> BaseException:
    """A failed fit whose root cause is one of our errors becomes one message with it and
    how to resume; any other failure (torch, CUDA, a bug) is re-raised with its traceback
    after the resume hint is printed."""
    from ray.train import TrainingFailedError

    if not isinstance(error, TrainingFailedError):
        return error
    hint = (f"Checkpoints of run {cfg.run_name} stay in {run_dir.uri}; fix the cause and "
            f"resume with: mpmae pretrain --set run_name={cfg.run_name} …")
    ours = _our_error(error)
    if ours is not None:
        return RunFailedError(f"training failed: {ours}\n{hint}")
    progress(f"training failed. {hint}")
    return error


def _our_error(error: BaseException) -> MpmaeError | None:
    """The first of our errors behind a training failure: in a worker's failure (Ray Train
    keeps one per rank) or down the chain of causes."""
    failures = list(getattr(error, "worker_failures", {}).values())
    for failure in [*failures, error]:
        current: BaseException | None = failure
        while current is not None:
            # A RayTaskError keeps the exception the worker raised as ``cause``.
            for candidate in (getattr(current, "cause", None), current):
                if isinstance(candidate, MpmaeError):
                    return candidate
            current = current.__cause__
    return None


def _scaling(cfg: PretrainConfig):
    """Worker resources, leaving ``data_cpus`` free so Ray Data never starves."""
    import ray
    from ray.train import ScalingConfig

    s = cfg.scaling
    total = ray.cluster_resources()
    use_gpu = s.use_gpu if s.use_gpu is not None else total.get("GPU", 0) >= s.num_workers
    needed = s.num_workers * s.cpus_per_worker + s.data_cpus
    # A cluster may autoscale: don't judge its size by what it has now.
    if not on_a_cluster(s.address) and needed > total.get("CPU", 0):
        raise ConfigError(
            f"{s.num_workers} worker(s) × {s.cpus_per_worker} CPU + {s.data_cpus} CPU for data "
            f"need {needed:g} CPUs; this machine has {total.get('CPU', 0):g}. Lower "
            "scaling.num_workers, scaling.cpus_per_worker or scaling.data_cpus",
            key="scaling")
    resources = {"CPU": s.cpus_per_worker}
    if s.accelerator_resource:
        resources[s.accelerator_resource] = 1
    return ScalingConfig(num_workers=s.num_workers, use_gpu=use_gpu,
                         resources_per_worker=resources)


def build_trainer(cfg: PretrainConfig, dataset: TileDataset, root: Location, run: TrackedRun,
                  callbacks: list, progress):
    """The run's TorchTrainer (storage: ``root/<run name>``, the run's folder, so
    re-fitting it resumes) and its total optimizer steps."""
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from mpmae.train.loop import train_loop

    # The dataset keeps the context it was made in: here, in `mpmae pretrain` and in every
    # Tune trial's process. Our progress line replaces Ray Data's bars.
    ray.data.DataContext.get_current().enable_progress_bars = False

    per_epoch, total = plan_steps(
        dataset.manifest.split_tiles(cfg.data.split), cfg.train.batch_size,
        cfg.train.accumulation, cfg.scaling.num_workers, cfg.optim.epochs, cfg.train.max_steps)
    progress(f"{total} optimizer steps ({per_epoch}/epoch), effective batch "
             f"{cfg.effective_batch}, lr {cfg.resolved_lr:.3g}")
    position = resume_position(run.folder)
    if position.epoch or position.tiles:
        progress(f"the data resumes at epoch {position.epoch}, after {position.tiles} tiles")
    spec = WorkerSpec(cfg, dataset.root, dataset.manifest, run.folder, run.mlflow_run_id,
                      total_steps=total, steps_per_epoch=per_epoch,
                      data_position=(position.epoch, position.tiles))
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"spec": spec},
        datasets={"train": dataset.read(
            cfg.data.split, cfg.model.pretext_set, seed=cfg.train.seed,
            task_cpus=min(1.0, cfg.scaling.data_cpus) or 1.0, first_epoch=position.epoch,
            skip_tiles=position.tiles, on_bad_shard=cfg.data.on_bad_shard)},
        scaling_config=_scaling(cfg),
        run_config=RunConfig(
            name=run.name,
            storage_path=root.path,
            storage_filesystem=root.fs if root.is_s3 else None,
            failure_config=FailureConfig(max_failures=cfg.scaling.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints),
            callbacks=callbacks,
        ),
    )
    return trainer, total


def _summary(r: RunResult) -> str:
    ui = redact_text(r.tracking_uri)
    if ui.startswith("sqlite:") or Path(ui).exists():
        how = f"mlflow ui --backend-store-uri {ui}   (then open http://127.0.0.1:5000)"
    else:
        how = f"open {ui} in a browser"
    return "\n".join([
        f"done: run {r.run_name}, {r.steps} steps",
        f"  encoder release: {r.encoder_uri}",
        "    load it with: python -c \"import mpmae; print(mpmae.load_encoder('"
        f"{r.encoder_uri}'))\"",
        f"  MLflow run {r.mlflow_run_id}; browse it with: {how}",
        f"  resume or extend: mpmae pretrain --set run_name={r.run_name}",
    ])
