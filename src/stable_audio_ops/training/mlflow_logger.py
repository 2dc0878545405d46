"""The run's MLflow logger and what it records before training starts (flags, flattened configs, config files).

Why MLflow and not upstream's W&B: a local sqlite store needs no account or network, and the pipelines,
registry and server read the same store. Only rank 0 logs (the caller decides).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger
from mlflow.entities import Param
from mlflow.exceptions import MlflowException

from stable_audio_ops.config.dataset_config import DatasetConfig, dataset_config_to_dict
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.training.options import TrainOptions

log = logging.getLogger(__name__)


class RunKeepingMLFlowLogger(MLFlowLogger):
    """Does not mark a run it did not open as finished (the pipeline that opened it ends it)."""

    def __init__(self, *args: Any, keeps_run: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keeps_run = keeps_run

    def finalize(self, status: str = "success") -> None:
        if status == "success" and self._keeps_run:
            return
        super().finalize(status)


def _sqlite_parent(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent
    return None


def make_logger(options: TrainOptions) -> RunKeepingMLFlowLogger | None:
    """MLFlowLogger for ``logger=mlflow``; None for ``none``. Logging into an existing run leaves it open."""
    kind = (options.logger or "none").lower()
    if kind in ("none", "", "false"):
        return None
    if kind != "mlflow":
        raise ConfigError("", "logger", f"unknown logger {options.logger!r}; known: mlflow, none")
    uri = options.mlflow_tracking_uri
    parent = _sqlite_parent(uri)
    artifact_location = None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (parent / "artifacts").resolve().as_uri()
    return RunKeepingMLFlowLogger(
        experiment_name=options.mlflow_experiment,
        run_name=options.name,
        tracking_uri=uri,
        run_id=options.mlflow_run_id or None,
        artifact_location=artifact_location,
        log_model=False,
        keeps_run=bool(options.mlflow_run_id),
    )


def flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    """Nested config -> ``{"prefix.a.b": "value"}`` (lists kept whole, as JSON)."""
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value if isinstance(value, str) else json.dumps(value)
    return out


def log_run_inputs(logger: MLFlowLogger, options: TrainOptions, model_config: dict,
                   dataset_config: DatasetConfig) -> None:
    """Params (CLI options, flattened configs) and the two config files as artifacts of the run; the dataset
    config as validated, every default written out (what the run actually read)."""
    client, run_id = logger.experiment, logger.run_id
    dataset_json = dataset_config_to_dict(dataset_config)
    params = flatten("train", {k: v for k, v in vars(options).items() if v not in ("", None)}, {})
    flatten("model_config", model_config, params)
    flatten("dataset_config", dataset_json, params)
    items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
    try:
        for start in range(0, len(items), 100):
            client.log_batch(run_id, params=items[start:start + 100])
    except MlflowException as exc:  # e.g. logging into a run that already has other values for these keys
        log.warning("some training params were not logged to MLflow: %s", exc)
    with tempfile.TemporaryDirectory(prefix="sao-configs-") as tmp:
        for filename, cfg in (("model_config.json", model_config), ("dataset_config.json", dataset_json)):
            path = Path(tmp) / filename
            path.write_text(json.dumps(cfg, indent=2))
            client.log_artifact(run_id, str(path), "configs")


__all__ = ["RunKeepingMLFlowLogger", "flatten", "log_run_inputs", "make_logger"]
