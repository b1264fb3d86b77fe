"""``geobench2.normalise``: GEO-Bench-2's inputs z-scored by the train split (the default)
or by either of the benchmark's own schemes from its statistics files, written here in its
layout over ``data synth-geobench2``'s datasets."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from mpmae.cli import main
from mpmae.data.geobench.bands import input_array
from mpmae.data.geobench2.catalog import dataset_info
from mpmae.data.geobench2.stats import stats_file
from mpmae.evaluate.command.encoders import open_encoder
from mpmae.evaluate.command.inputs import load_split
from mpmae.evaluate.command.plan import open_datasets, plan_datasets
from mpmae.evaluate.config import EvaluateConfig, GeoBench2EvalConfig

QUICK = ["--set", "mlflow.system_metrics=false"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("geobench2")
    assert main(["data", "synth-geobench2", str(root), "--tiles", "30", "--size", "8"]) == 0
    return root


def _benv2_stats(root: Path, scheme: str) -> Path:
    """A statistics file for benv2 in the benchmark's layout: every S2 band's window
    [0, 4000] (SatMAE, mean 2000 ± 2·1000) or clip range [0, 3000]."""
    info = dataset_info("benv2")
    blocks = {}
    for modality in info.modalities:
        n = len(modality.bands)
        blocks[f"image_{modality.key}"] = {
            "band_names": list(modality.bands), "mean": [2000.0] * n, "std": [1000.0] * n,
            "shift_offsets": [0.0] * n, "norm_mean": [0.25] * n, "norm_std": [0.5] * n,
            "clip_min_used": 0, "clip_max_used": 3000}
    path = stats_file(root, scheme, "benv2")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"input_stats": blocks}))
    return path


def _plan(synth: Path, cfg: EvaluateConfig):
    encoder = open_encoder("random:atto")
    [plan] = plan_datasets(encoder, open_datasets([str(synth / "benv2")]), cfg, lambda _: None)
    return encoder, plan


@pytest.mark.parametrize("scheme", ["satmae", "clip_rescale"])
def test_a_benchmark_scheme_normalises_the_inputs_by_its_statistics_file(synth, tmp_path,
                                                                         scheme):
    _benv2_stats(tmp_path, scheme)
    cfg = EvaluateConfig(geobench2=GeoBench2EvalConfig(normalise=scheme, stats=str(tmp_path)))
    encoder, plan = _plan(synth, cfg)
    assert plan.stats_note == f"GEO-Bench-2 {scheme} (benv2_stats.json)"
    names = plan.test[:3]
    x = load_split(plan.dataset, names, plan.match, plan.stats, encoder.module.patch_size).x
    raw = np.stack([input_array(plan.dataset.read_sample(n).bands, plan.match)
                    for n in names]).astype(np.float32)
    if scheme == "satmae":  # clamp((x − 0) / 4000) to [0, 1]
        expected = np.clip(raw / np.float32(4000 + 1e-6), 0, 1)
    else:  # clip to [0, 3000], / 3000, then z-score by 0.25 and 0.5
        expected = (np.clip(raw, 0, 3000) / np.float32(3000) - 0.25) / np.float32(0.5 + 1e-6)
    h, w = raw.shape[-2:]
    np.testing.assert_allclose(x[..., :h, :w].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_the_default_stays_the_train_split_z_score(synth):
    _, plan = _plan(synth, EvaluateConfig())
    assert plan.stats_note.startswith("train split statistics")


@pytest.mark.parametrize("case", ["unknown scheme", "no statistics file", "encoder stats"])
def test_a_scheme_that_cannot_apply_is_one_line(case, synth, tmp_path, tracking, capsys):
    dataset, options = synth / "so2sat", ["--set", "geobench2.normalise=satmae"]
    if case == "unknown scheme":
        options = ["--set", "geobench2.normalise=satmea"]
        expected = ["geobench2.normalise", "'train_zscore', 'satmae', 'clip_rescale'"]
    elif case == "no statistics file":
        expected = ["so2sat: no satmae statistics file",
                    str(stats_file(synth, "satmae", "so2sat"))]
    else:
        options += ["--set", "normalise=encoder"]
        expected = ["geobench2.normalise", "needs normalise=dataset"]
    rc = main(["evaluate", "random:atto", str(dataset), "--protocol", "knn", *options, *QUICK])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "\n" not in err and all(e in err for e in expected), err


@pytest.mark.ray
def test_knn_under_the_satmae_scheme_records_it_in_rows_and_mlflow(ray_local, synth,
                                                                   tmp_path, tracking):
    _benv2_stats(tmp_path / "stats", "satmae")
    out = tmp_path / "out" / "results.json"
    rc = main(["evaluate", "random:atto", str(synth / "benv2"), "--protocol", "knn",
               "--set", "geobench2.normalise=satmae", "--set",
               f"geobench2.stats={tmp_path / 'stats'}", "--results", str(out), *QUICK])
    assert rc == 0
    [row] = json.loads(out.read_text())["results"]
    assert row["normalisation"] == "GEO-Bench-2 satmae (benv2_stats.json)"
    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("mpmae-evaluate").experiment_id])
    params = {k: v for r in runs for k, v in r.data.params.items()}  # run and its cell
    assert params["geobench2.normalise"] == "satmae"
    assert params["normalisation"] == "GEO-Bench-2 satmae (benv2_stats.json)"
