"""Pretraining on the driver: prepare data and run bookkeeping, then fit a TorchTrainer
(``mpmae pretrain`` is :mod:`mpmae.pipeline.pretrain`, which may evaluate the encoder after).

A run lives in ``<storage.root>/<run_name>/``: Ray Train's checkpoints, the run file and
config of :mod:`mpmae.track.run_folder` and, at the end, the ``encoder/`` release.
Re-running with the same run name resumes from the latest checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpmae.cluster.connect import connect, on_a_cluster, require_shared_paths
from mpmae.cluster.task_result import our_error
from mpmae.config import ConfigError, data_dir, override, run_stamp, runs_dir
from mpmae.data.stream.retry_tally import RetryTally
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.errors import MpmaeError, Preempted
from mpmae.model.release import RELEASE_DIR
from mpmae.ray_fixes.train_sigint import keep_our_sigint
from mpmae.storage import Location, resolve, retry_counts
from mpmae.track.run_folder import TrackedRun, tracked_run
from mpmae.train.config import PretrainConfig
from mpmae.train.preemption import notice_on_signals
from mpmae.train.resume import ResumingStream, resume_position
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
    config: PretrainConfig  # as the run used it: run name, storage root, tracking URI filled


def pretrain(cfg: PretrainConfig, progress=print) -> RunResult:
    """Run (or resume) pretraining as configured; returns where everything landed."""
    import ray

    from mpmae.track.runs import tracking_uri
    from mpmae.train.progress import ConsoleProgress

    retries_before = retry_counts()  # the start-up's reads count in the run's metrics too
    cfg, where = located(cfg)
    dataset = open_dataset(cfg, where.data, progress)
    with tracked_run(where.runs.join(cfg.run_name), cfg.mlflow, experiment=cfg.experiment,
                     name=cfg.run_name, config=cfg, model=cfg.model) as run:
        progress(("resuming" if run.resumed else "starting") +
                 f" run {run.name} in {run.folder.uri}")
        started_ray = connect(cfg.scaling.address)
        try:
            trainer, steps = build_trainer(cfg, dataset, where.runs, run,
                                           [ConsoleProgress()], progress, retries_before)
            keep_our_sigint(trainer)
            with notice_on_signals(run.folder):
                result = trainer.fit()
        except BaseException as error:
            raise _explained(error, cfg, run.folder, progress) from None
        finally:
            if started_ray:
                ray.shutdown()
        _say_checkpoints(result.metrics, steps, run.folder, progress)
    return RunResult(run.name, run.folder.uri, run.folder.join(RELEASE_DIR).uri,
                     run.mlflow_run_id, tracking_uri(cfg.mlflow), steps, cfg)


def _say_checkpoints(metrics: dict | None, steps: int, run_dir: Location, progress) -> None:
    """From the latest checkpoint's report (Ray Train's result holds no other): a preempted
    run raises :class:`Preempted`; a run whose last checkpoint could not be written says
    which one a resume would start from."""
    metrics = metrics or {}
    if metrics.get("preempted"):
        raise Preempted(f"preempted at step {int(metrics['step'])} (checkpoint in "
                        f"{run_dir.uri}); run the same command to resume")
    latest = int(metrics.get("step", 0))
    if latest != steps:
        since = f"step {latest}" if latest else "none: a resume would start afresh"
        progress(f"warning: the last checkpoint of this run could not be written (the "
                 f"warnings above say why); the latest in {run_dir.uri} is {since}")


@dataclass(frozen=True)
class RunLocations:
    """Where a run reads and writes, resolved once on the driver (one set of storage
    options) and handed down: the training data and the root its run folder goes under."""

    data: Location
    runs: Location

    @classmethod
    def of(cls, cfg: PretrainConfig) -> RunLocations:
        """The locations of a :func:`resolved` config's ``data.uri`` and ``storage.root``."""
        options = cfg.storage.options()
        return cls(resolve(cfg.data.uri, options), resolve(cfg.storage.root, options))


def located(cfg: PretrainConfig) -> tuple[PretrainConfig, RunLocations]:
    """The :func:`resolved` config and its locations; the probe set's default (the data's
    ``downstream/``) is looked for at the data's location."""
    cfg = resolved(cfg)
    where = RunLocations.of(cfg)
    if cfg.train.probe_every and not cfg.data.probe_uri:
        cfg = override(cfg, {"data.probe_uri": _default_probe_uri(cfg, where.data)})
    return cfg, where


def resolved(cfg: PretrainConfig) -> PretrainConfig:
    """Fill the embedded defaults in, so every process (and a resume) sees the same values
    (the probe set's default, which needs a look at the data, is :func:`located`'s)."""
    from mpmae.track.runs import tracking_uri

    require_shared_paths(cfg.scaling.address,
                         {"data.uri": cfg.data.uri, "storage.root": cfg.storage.root})
    data_uri = cfg.data.uri or str(data_dir() / f"synth-{cfg.data.synth_tiles}x"
                                   f"{cfg.data.tile_size}")
    return override(cfg, {
        "run_name": cfg.run_name or f"{cfg.name}-{run_stamp()}",
        "storage.root": cfg.storage.root or str(runs_dir()),
        "data.uri": data_uri,
        "mlflow.tracking_uri": tracking_uri(cfg.mlflow),
    })


def _default_probe_uri(cfg: PretrainConfig, data: Location) -> str:
    """``<data.uri>/downstream``; the synthetic world writes it next to the tiles, which
    may happen only later (first use), so that dataset's folder counts as having one."""
    from mpmae.data.format.manifest import MANIFEST_NAME
    from mpmae.data.sources.synth import DOWNSTREAM_DIR

    downstream = data.join(DOWNSTREAM_DIR)
    if _is_embedded_synthetic(cfg) or downstream.join(MANIFEST_NAME).exists():
        return downstream.uri
    raise ConfigError(f"train.probe_every needs a labelled set and {downstream.uri} holds "
                      "none: set data.probe_uri, or train.probe_every=0", key="data.probe_uri")


def _is_embedded_synthetic(cfg: PretrainConfig) -> bool:
    return cfg.data.uri.startswith(str(data_dir() / "synth-"))


def open_dataset(cfg: PretrainConfig, data: Location, progress) -> TileDataset:
    """Open the training data at ``data`` (the embedded synthetic world is generated on
    first use) and check it holds the pretext set's modalities."""
    from mpmae.data.format.manifest import MANIFEST_NAME

    if _is_embedded_synthetic(cfg) and not data.join(MANIFEST_NAME).exists():
        from mpmae.data.sources.synth import synthesize

        progress(f"generating the synthetic dataset in {data.uri} (first use only)")
        synthesize(data.uri, tiles=cfg.data.synth_tiles, size=cfg.data.tile_size,
                   storage=data.options, progress=lambda _: None)
    dataset = TileDataset.open(data)
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
    ours = our_error(error)
    if isinstance(ours, Preempted):  # its checkpoint failed: rank 0 says where it resumes
        return ours
    if ours is not None:
        return RunFailedError(f"training failed: {ours}\n{hint}")
    progress(f"training failed. {hint}")
    return error


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
                  callbacks: list, progress, retries_before: dict[str, int] | None = None):
    """The run's TorchTrainer (storage: ``root/<run name>``, the run's folder, so
    re-fitting it resumes) and its total optimizer steps. ``retries_before``: this
    process's storage retries (``retry_counts()``) when the command began; those since then
    go into the run's ``storage_retries/*`` metrics with the stream's."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from mpmae.train.loop import train_loop

    per_epoch, total = plan_steps(
        dataset.manifest.split_tiles(cfg.data.split), cfg.train.batch_size,
        cfg.train.accumulation, cfg.scaling.num_workers, cfg.optim.epochs, cfg.train.max_steps)
    progress(f"{total} optimizer steps ({per_epoch}/epoch), effective batch "
             f"{cfg.effective_batch}, lr {cfg.resolved_lr:.3g}")
    position = resume_position(run.folder)
    if position.epoch or position.tiles:
        progress(f"the data resumes at epoch {position.epoch}, after {position.tiles} tiles")
    tally = RetryTally.start()
    if retries_before is not None:
        tally.send_since(retries_before)  # the manifest's and footers' reads so far
    spec = WorkerSpec(cfg, dataset.root, dataset.manifest, run.folder, run.mlflow_run_id,
                      total_steps=total, steps_per_epoch=per_epoch, retry_tally=tally)
    stream = ResumingStream(dataset, cfg, run.folder, tally)
    stream()  # built here once: a split it cannot read fails before any cluster work
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"spec": spec},
        datasets={"train": stream},  # built anew at every start of the worker group
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
