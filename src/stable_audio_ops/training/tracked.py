"""Training and unwrapping as an orchestrator runs them: one call per step, inside the caller's MLflow run.

Why this module: the Kedro pipelines (autoencoder, latent_diffusion), DVC stages and scripts all need the
same two steps, "train as its own process, logging into my run" and "unwrap the final checkpoint, attach
it to that run, report the losses". Written out in each pipeline they were near-copies that drifted
(one logged the artifact through the active run, the other through the client). Here they are written
once; the pipelines only choose the run layout (``nested_run``) and which losses to report
(:class:`LossReport`).

MLflow is imported inside the functions, as elsewhere in the library, so importing this module is cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stable_audio_ops.training.launch import launch_training_process
from stable_audio_ops.training.unwrap import unwrap_checkpoint

log = logging.getLogger(__name__)


def _active_run_id() -> str | None:
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def train_in_process(model_config: Mapping[str, Any], dataset_config: Mapping[str, Any], *, name: str,
                     run_dir: str | Path, train: Mapping[str, Any], nested_run: bool = False,
                     extra_flags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train with :func:`launch_training_process` (checkpoints in ``<run_dir>/checkpoints``); returns the
    training result the unwrap step reads: ``checkpoint_path``, ``save_dir``, ``mlflow_run_id``, ``max_steps``.

    ``train`` holds the train CLI's flags plus ``threads`` (torch threads of the training process, not a
    flag). With an active MLflow run the process logs into it, or, with ``nested_run``, into a child run
    named ``name`` (so a second model's ``train/loss`` history does not mix with the first's); the child
    run is ended FINISHED or FAILED here. Without an active run nothing is logged.
    """
    import mlflow

    train = dict(train)
    threads = train.pop("threads", None)
    run_id = _active_run_id()
    started_child = False
    if nested_run and run_id is not None:
        run_id = mlflow.start_run(run_name=name, nested=True).info.run_id
        started_child = True
    status = "FAILED"
    try:
        flags = {"name": name, **train, **dict(extra_flags or {}), "logger": "mlflow" if run_id else "none",
                 "mlflow_tracking_uri": mlflow.get_tracking_uri() if run_id else None, "mlflow_run_id": run_id}
        result = launch_training_process(dict(model_config), dict(dataset_config),
                                         save_dir=Path(run_dir) / "checkpoints", flags=flags, threads=threads)
        status = "FINISHED"
    finally:
        if started_child:
            mlflow.end_run(status=status)
    return {"checkpoint_path": str(result.checkpoint_path), "save_dir": str(result.save_dir),
            "mlflow_run_id": run_id, "max_steps": train.get("max_steps")}


@dataclass(frozen=True)
class LossReport:
    """Which training losses the unwrap step reports as pipeline metrics.

    ``latest``: ``final_<last path part>`` = the last logged value of each metric (an autoencoder's loss terms).
    ``windowed``: ``first_<name>`` / ``final_<name>`` = the mean over the first / last tenth of that metric's
    history, so a noisy single step does not decide whether the loss went down (the DiT's loss).
    """

    latest: Sequence[str] = ()
    windowed: str | None = None


def _latest_losses(client: Any, run_id: str, keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """``final_<last path part>`` = the last logged value of each of ``keys`` the run has."""
    latest = client.get_run(run_id).data.metrics
    return {f"final_{key.split('/')[-1]}": {"value": float(latest[key]), "step": 0} for key in keys if key in latest}


def _windowed_losses(client: Any, run_id: str, key: str) -> dict[str, dict[str, float]]:
    """``first_<name>`` / ``final_<name>`` = the mean over the first / last tenth of ``key``'s history (none
    when the run never logged it)."""
    history = client.get_metric_history(run_id, key)
    if not history:
        return {}
    values = [m.value for m in sorted(history, key=lambda m: m.step)]
    window = max(1, len(values) // 10)
    short = key.split("/")[-1]
    return {f"first_{short}": {"value": float(np.mean(values[:window])), "step": 0},
            f"final_{short}": {"value": float(np.mean(values[-window:])), "step": 0}}


def loss_metrics(run_id: str, report: LossReport) -> dict[str, dict[str, float]]:
    """The losses ``report`` chooses from MLflow run ``run_id``, as ``{name: {"value", "step"}}`` (the shape
    kedro-mlflow's metrics datasets log)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    metrics = _latest_losses(client, run_id, report.latest) if report.latest else {}
    if report.windowed:
        metrics.update(_windowed_losses(client, run_id, report.windowed))
    return metrics


def model_record(model_path: str | Path, training_result: Mapping[str, Any],
                 model_config: Mapping[str, Any]) -> dict[str, Any]:
    """What later steps read about an unwrapped model without loading it: ``path``, ``size_bytes``,
    ``trained_from``, ``mlflow_run_id``, ``model_type``, ``sample_size``, ``sample_rate``."""
    return {"path": str(model_path), "size_bytes": Path(model_path).stat().st_size,
            "trained_from": training_result["checkpoint_path"], "mlflow_run_id": training_result.get("mlflow_run_id"),
            "model_type": model_config.get("model_type"), "sample_size": model_config.get("sample_size"),
            "sample_rate": model_config.get("sample_rate")}


def attach_to_run(run_id: str, path: str | Path, artifact_path: str) -> None:
    """Log the file ``path`` as an artifact of MLflow run ``run_id`` under ``artifact_path``."""
    from mlflow.tracking import MlflowClient

    MlflowClient().log_artifact(run_id, str(path), artifact_path=artifact_path)


def unwrap_trained_model(training_result: Mapping[str, Any], model_config: Mapping[str, Any],
                         output_path: str | Path, *, artifact_path: str,
                         losses: LossReport = LossReport()) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The unwrap step: the final training checkpoint unwrapped into a model-only safetensors file
    (:func:`unwrap_checkpoint`: config embedded, EMA weights when trained with EMA); returns
    (:func:`model_record`, loss metrics).

    When training logged to MLflow, the file is attached to that run under ``artifact_path``
    (:func:`attach_to_run`) and the losses chosen by ``losses`` are returned (:func:`loss_metrics`); else no
    metrics.
    """
    output = unwrap_checkpoint(dict(model_config), training_result["checkpoint_path"], output_path)
    record = model_record(output, training_result, model_config)
    run_id = training_result.get("mlflow_run_id")
    metrics = loss_metrics(run_id, losses) if run_id else {}
    if run_id:
        attach_to_run(run_id, output, artifact_path)
    log.info("%s: unwrapped model written to %s", artifact_path, output)
    return record, metrics


__all__ = ["LossReport", "attach_to_run", "loss_metrics", "model_record", "train_in_process", "unwrap_trained_model"]
