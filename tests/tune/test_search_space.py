"""Search space expansion, TuneConfig validation, concurrency sizing, the results table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpmae.config import ConfigError, load_config
from mpmae.tune.config import TuneConfig
from mpmae.tune.resources import concurrent_trials, launcher_maxima
from mpmae.tune.results import best_row, probe_figure, to_csv, trial_row
from mpmae.tune.search_space import plan_trials, trial_config

PROBE = "pretrain.train.probe_every=10"


def _cfg(*overrides: str) -> TuneConfig:
    return load_config(TuneConfig, None, [PROBE, *overrides])


def test_grid_times_samples_with_an_explicit_task_list():
    cfg = _cfg("search.pretext=[S2,all,[sentinel2,aster]]",
               "search.loss_weighting=[uncertainty,unweighted]", "search.lr=[1e-3,3e-4]",
               "num_samples=2")
    trials = plan_trials(cfg)
    assert len(trials) == 3 * 2 * 2 * 2  # num_samples repeats the grid
    assert [t["key"] for t in trials[:2]] == ["t000", "t001"] and trials[-1]["key"] == "t023"
    assert trials[:12] == [{**t, "key": f"t{i:03d}"} for i, t in enumerate(trials[12:])]
    assert {t["pretext"] for t in trials} == {"S2", "all", "sentinel2,aster"}
    trial = trial_config(cfg.pretrain, trials[11])
    assert trial.model.pretext_set.name == "sentinel2+aster" and trial.run_name == "t011"
    assert trial.optim.lr == trials[11]["lr"] and trial.train.seed == 0


def test_random_mode_draws_from_ranges_the_same_for_the_same_sweep_name():
    cfg = _cfg("search.mode=random", "search.lr_range=[1e-4,1e-2]",
               "search.mask_ratio_range=[0.5,0.8]", "num_samples=5", "sweep_name=s1")
    draws = plan_trials(cfg)
    assert len(draws) == 5 and len({d["lr"] for d in draws}) == 5
    assert all(1e-4 <= d["lr"] <= 1e-2 and 0.5 <= d["mask_ratio"] <= 0.8 for d in draws)
    assert plan_trials(cfg) == draws  # a resumed sweep knows its trials again
    assert plan_trials(_cfg("search.mode=random", "search.lr_range=[1e-4,1e-2]",
                            "num_samples=5", "sweep_name=s2")) != draws


@pytest.mark.parametrize(("overrides", "key", "words"), [
    (["pretrain.train.probe_every=0"], "pretrain.train.probe_every", "linear probe"),
    (["pretrain.run_name=x"], "pretrain.run_name", "sweep_name"),
    (["search.pretext=[S2,bogus]"], "search.pretext[1]", "unknown pretext"),
    (["search.pretext=[[aster]]"], "search.pretext[0]", "sentinel2"),
    (["search.lr=[]"], "search.lr", "at least one"),
    (["search.mask_ratio=[1.0]"], "search.mask_ratio", "[0, 1)"),
    (["search.lr_range=[1e-4,1e-2]"], "search.lr_range", "mode: random"),
    (["search.mode=random", "search.lr_range=[1e-2,1e-4]"], "search.lr_range", "low < high"),
    (["search.loss_weighting=[uncertain]"], "search.loss_weighting[0]", "did you mean"),
    (["scheduler.reduction_factor=1"], "scheduler.reduction_factor", "more than 1"),
    (["max_concurrent_trials=-1"], "max_concurrent_trials", "0"),
    (["sweep_name=a b"], "sweep_name", "letters"),
])
def test_config_errors_name_the_key(overrides, key, words):
    items = overrides if overrides[0].startswith("pretrain.train.probe_every") \
        else [PROBE, *overrides]
    with pytest.raises(ConfigError) as error:
        load_config(TuneConfig, None, items)
    assert error.value.key == key and words in error.value.message


def test_the_shipped_sweep_config_loads():
    cfg = load_config(TuneConfig, "jobs/configs/sweep_pretext.yaml", [])
    assert len(plan_trials(cfg)) == 10 and cfg.scheduler.kind == "asha"


def test_concurrency_from_resources():
    one_trial = {"CPU": 1.1, "accelerator_gpu": 1}
    # Autoscaler maxima: 2 one-GPU nodes with 1 CPU each + a 2-CPU head, 1 CPU kept for data.
    assert concurrent_trials(one_trial, {"CPU": 4, "accelerator_gpu": 2}, 1, planned=8) == 2
    assert concurrent_trials(one_trial, {"CPU": 4, "accelerator_gpu": 18}, 1, planned=8) == 2
    assert concurrent_trials({"CPU": 0.6}, {"CPU": 2}, 0.5, planned=8) == 2
    assert concurrent_trials({"CPU": 0.6}, {"CPU": 64}, 0.5, planned=3) == 3
    with pytest.raises(ConfigError, match="accelerator_gpu"):
        concurrent_trials(one_trial, {"CPU": 8}, 1, planned=2)


def test_maxima_of_the_shipped_cluster_config():
    import yaml

    maxima = launcher_maxima(yaml.safe_load(Path("ray-cluster.yaml").read_text()))
    # Head (2 CPU) + 8 x gpu_1x (16 CPU, 1 GPU) + 2 x gpu_8x (96 CPU, 8 GPU).
    assert maxima["CPU"] == 2 + 8 * 16 + 2 * 96
    assert maxima["accelerator_gpu"] == maxima["GPU"] == 8 + 16


def _rows(objective: str, scores: list[float | None]) -> list[dict]:
    """Trials a (completed, probe 0.5), b (stopped, probe 0.9), c (completed, probe 0.7),
    scored ``scores`` on ``objective``."""
    return [
        trial_row({"pretext": "S2", "loss_weighting": "uncertainty", "lr": 1e-3,
                   "mask_ratio": 0.6, "seed": 0},
                  {"trial_id": "a", "step": 8, "probe_accuracy": 0.5, "loss/sentinel2": 0.9},
                  "completed", "r1", objective, scores[0]),
        trial_row({"pretext": "sentinel2,aster", "loss_weighting": "unweighted", "lr": 1e-3,
                   "mask_ratio": 0.6, "seed": 0},
                  {"trial_id": "b", "step": 4, "probe_accuracy": 0.9}, "stopped", "r2",
                  objective, scores[1]),
        trial_row({"pretext": "all", "loss_weighting": "unweighted", "lr": 1e-3,
                   "mask_ratio": 0.6, "seed": 1},
                  {"trial_id": "c", "step": 8, "probe_accuracy": 0.7}, "completed", "r3",
                  objective, scores[2]),
    ]


def test_results_table_best_and_figure():
    rows = _rows("probe_accuracy", [0.5, 0.9, 0.7])
    assert rows[1]["pretext"] == "sentinel2+aster"
    assert best_row(rows)["trial_id"] == "c"  # b scored higher but was stopped: no encoder
    text = to_csv(rows)
    assert text.splitlines()[0].startswith("trial_id,pretext,loss_weighting")
    assert len(text.splitlines()) == 4
    assert probe_figure(rows).startswith(b"\x89PNG")
    assert probe_figure([]).startswith(b"\x89PNG")


def test_a_geobench_objective_ranks_the_finished_trials_not_the_probe():
    name = "downstream/synth-landscape/knn/default/accuracy"
    rows = _rows(name, [0.8, None, 0.6])
    assert best_row(rows)["trial_id"] == "a"  # c has the better probe, a the better score
    header, first = to_csv(rows).splitlines()[:2]
    assert "objective,objective_value" in header and f"{name},0.8" in first
    assert best_row(_rows(name, [None, None, None])) is None  # no finished trial scored


def test_an_error_metric_objective_ranks_the_lowest_best():
    rows = _rows("downstream/biomassters/linear/default/rmse", [0.3, None, 0.5])
    assert best_row(rows)["trial_id"] == "a"  # RMSE 0.3 beats 0.5
