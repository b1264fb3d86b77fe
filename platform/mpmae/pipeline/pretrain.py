"""``mpmae pretrain``: train (or resume) a run, then, with ``eval.datasets`` set, evaluate
its final encoder on them (the datasets checked before training starts); the run's
summary comes last."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mpmae.pipeline.run_encoder import check_eval_after, evaluate_run_encoder
from mpmae.redact import redact_text
from mpmae.train import launch
from mpmae.train.config import PretrainConfig
from mpmae.train.launch import RunResult


def pretrain(cfg: PretrainConfig, progress: Callable[[str], None] = print) -> RunResult:
    """Run (or resume) pretraining as configured and evaluate its encoder as asked;
    returns where everything landed."""
    if cfg.eval.datasets:
        check_eval_after(cfg)  # a dataset it cannot score must not cost a training run
    result = launch.pretrain(cfg, progress)
    if result.config.eval.datasets:
        evaluate_run_encoder(result.config, list(result.config.eval.datasets), progress,
                             protocol=result.config.eval.protocol,
                             seeds=result.config.eval.seeds)
    progress(summary(result))
    return result


def summary(r: RunResult) -> str:
    """Where the run landed and what to do next: load, browse, resume."""
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
