"""The sweep config schema: what `mpmae tune --config FILE --set key=value` accepts.

A sweep is a base pretraining config (``pretrain:``, every key of ``mpmae pretrain``) plus a
search space whose choices override it per trial. ``mpmae tune --help-config`` prints every
key; ``jobs/configs/sweep_pretext.yaml`` is the paper's pretext comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mpmae.config import ConfigError, check_name, doc, require
from mpmae.modalities import resolve_pretext
from mpmae.model.choices import Weighting
from mpmae.train.config import PretrainConfig
from mpmae.tune.objective import ObjectiveConfig


@dataclass(frozen=True)
class SearchConfig:
    """Each list is a dimension. grid: every combination; random: each trial draws one value
    per dimension (and lr / mask ratio from their ranges if given)."""

    mode: Literal["grid", "random"] = field(default="grid", metadata=doc(
        "grid: every combination of the lists; random: draw num_samples trials"))
    pretext: list[str | list[str]] = field(default_factory=lambda: ["S2", "all"], metadata=doc(
        "Pretext sets (S2, pix, img, all, rgb) or explicit task lists with sentinel2"))
    loss_weighting: list[Weighting] = field(default_factory=lambda: ["uncertainty"],
                                            metadata=doc("Loss weightings to try"))
    lr: list[float] = field(default_factory=lambda: [1.0e-3], metadata=doc(
        "Learning rates to try"))
    mask_ratio: list[float] = field(default_factory=lambda: [0.6], metadata=doc(
        "Mask ratios to try"))
    seed: list[int] = field(default_factory=lambda: [0], metadata=doc(
        "Seeds (train.seed): repeats of every combination with other masks and init"))
    lr_range: tuple[float, float] | None = field(default=None, metadata=doc(
        "random mode: draw lr log-uniformly in [low, high] instead of from lr"))
    mask_ratio_range: tuple[float, float] | None = field(default=None, metadata=doc(
        "random mode: draw the mask ratio uniformly in [low, high] instead of from mask_ratio"))

    def validate(self) -> None:
        for key in ("pretext", "loss_weighting", "lr", "mask_ratio", "seed"):
            require(len(getattr(self, key)) > 0, key, "needs at least one value")
        for i, spec in enumerate(self.pretext):
            try:
                resolve_pretext(spec)
            except ValueError as e:
                raise ConfigError(str(e), f"pretext[{i}]") from None
        require(all(v > 0 for v in self.lr), "lr", "every learning rate must be positive")
        require(all(0 <= v < 1 for v in self.mask_ratio), "mask_ratio",
                 "every mask ratio must be in [0, 1)")
        for key, low_ok in (("lr_range", lambda lo: lo > 0), ("mask_ratio_range",
                                                             lambda lo: lo >= 0)):
            bounds = getattr(self, key)
            if bounds is None:
                continue
            require(self.mode == "random", key, "only applies with mode: random")
            low, high = bounds
            require(low_ok(low) and low < high and (key == "lr_range" or high < 1), key,
                     f"needs low < high within the value's range, got {list(bounds)}")


@dataclass(frozen=True)
class SchedulerConfig:
    kind: Literal["asha", "none"] = field(default="asha", metadata=doc(
        "asha: stop trials whose probe lags at each rung (the cheap proxy, also when "
        "objective.dataset is set); none: run every trial to the end"))
    grace_period: int = field(default=50, metadata=doc(
        "Optimizer steps every trial runs before ASHA may stop it"))
    reduction_factor: float = field(default=2.0, metadata=doc(
        "ASHA keeps 1/reduction_factor of the trials at each rung"))

    def validate(self) -> None:
        require(self.grace_period >= 1, "grace_period", "must be 1 or more")
        require(self.reduction_factor > 1, "reduction_factor", "must be more than 1")


@dataclass(frozen=True)
class TuneConfig:
    name: str = field(default="sweep-pretext", metadata=doc(
        "MLflow experiment of the sweep and its trials (unless pretrain.mlflow.experiment)"))
    sweep_name: str = field(default="", metadata=doc(
        "Sweep folder and parent run name; empty: name + timestamp. Reusing it resumes"))
    pretrain: PretrainConfig = field(default_factory=PretrainConfig, metadata=doc(
        "Base pretraining config of every trial (keys of mpmae pretrain)"))
    search: SearchConfig = field(default_factory=SearchConfig, metadata=doc("Search space"))
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig, metadata=doc(
        "Early stopping on probe_accuracy (max), time on optimizer steps, whatever the "
        "objective"))
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig, metadata=doc(
        "What ranks the finished trials, picks the best and the registered encoder: the "
        "probe, or a GEO-Bench dataset's kNN/linear/logistic score of each finished trial"))
    num_samples: int = field(default=1, metadata=doc(
        "grid: repeats of the whole grid; random: trials drawn"))
    max_concurrent_trials: int = field(default=0, metadata=doc(
        "Trials at once; 0: as many as the cluster's resources (autoscaler maxima "
        "included) hold"))
    cluster_config: str = field(default="", metadata=doc(
        "Cluster launcher YAML (ray-cluster.yaml) whose worker types' max_workers bound "
        "what the autoscaler can add, for sizing max_concurrent_trials on a cluster that "
        "does not publish its maxima; empty: what the cluster shows"))
    trial_cpus: float = field(default=0.1, metadata=doc(
        "CPUs held by each trial's driver function (it only waits on its trainer; the "
        "workers' own resources come from pretrain.scaling)"))
    register_best: bool = field(default=True, metadata=doc(
        "Register the best trial's encoder as pretrain.mlflow.register_as"))

    def validate(self) -> None:
        check_name(self.name, "name")
        if self.sweep_name:
            check_name(self.sweep_name, "sweep_name")
        require(self.num_samples >= 1, "num_samples", "must be 1 or more")
        require(self.max_concurrent_trials >= 0, "max_concurrent_trials",
                 "must be 0 (sized from the cluster) or more")
        require(self.trial_cpus >= 0, "trial_cpus", "must be 0 or more")
        require(self.pretrain.train.probe_every >= 1, "pretrain.train.probe_every",
                 "ASHA stops trials on the linear probe: set it to 1 or more")
        require(not self.pretrain.run_name, "pretrain.run_name",
                 "trials name their runs themselves; leave it empty (use sweep_name)")
