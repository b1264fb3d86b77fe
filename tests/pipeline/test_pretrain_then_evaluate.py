"""``mpmae pretrain`` with ``eval.datasets``: a tiny run on a real local Ray, then its final
encoder scored by ``mpmae evaluate``'s code; the scores land on the pretraining run."""

from __future__ import annotations

import pytest

from mpmae.pipeline.pretrain import pretrain

pytestmark = pytest.mark.ray


def test_eval_datasets_score_the_final_encoder_on_its_pretraining_run(ray_local, tiny_config,
                                                                       small_world,
                                                                       mlflow_runs):
    cfg = tiny_config(f"eval.datasets=[{small_world / 'geobench'}]", "train.figure_every=0")
    said: list[str] = []
    result = pretrain(cfg, progress=said.append)
    client, _ = mlflow_runs(cfg)
    metrics = client.get_run(result.mlflow_run_id).data.metrics
    assert "downstream/synth-landscape/knn/default/accuracy" in metrics
    assert said[-1].startswith(f"done: run {result.run_name}")  # the summary comes last
