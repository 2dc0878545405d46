"""`kedro run --pipelines=data_preparation,autoencoder` end to end on a tiny config, checked through MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from tests.pipelines.conftest import run_kedro

pytestmark = pytest.mark.slow


def test_data_preparation_then_autoencoder(kedro_project: Path) -> None:
    raw = kedro_project / "data" / "01_raw" / "extra"
    raw.mkdir(parents=True)
    (raw / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")  # must be skipped and reported, not fatal

    run_kedro(kedro_project, "--pipelines=data_preparation,autoencoder")

    # data_preparation: manifest, report and dataset config
    summary = json.loads((kedro_project / "data/08_reporting/data_summary.json").read_text())
    assert summary["readable"] == 8  # 2 instruments x 2 notes x 2 velocities
    assert summary["skipped"] == 1
    report = (kedro_project / "data/08_reporting/data_report.md").read_text()
    assert "broken.wav" in report
    dataset_config = json.loads((kedro_project / "data/03_primary/dataset_config.json").read_text())
    assert dataset_config["dataset_type"] == "audio_dir"
    # training reads the train split only: 6 of the 8 clips (one velocity of every second pitch is held out)
    split = json.loads((kedro_project / "data/03_primary/split.json").read_text())
    assert split["counts"] == {"train": 6, "test": 2}
    assert [s["path"] for s in dataset_config["datasets"]] == ["data/03_primary/splits/train/demo_notes"]

    # autoencoder: the unwrapped model loads strictly into a fresh model built from the config
    model_config = json.loads((kedro_project / "conf/base/model_configs/autoencoder_demo.json").read_text())
    unwrapped = kedro_project / "data/06_models/autoencoder.safetensors"
    model = create_model_from_config(model_config)
    load_state_dict_checked(model, load_ckpt_state_dict(unwrapped), strict=True)

    # MLflow: one run with the pipeline's params, the data metrics and the training loss history
    client = MlflowClient(tracking_uri=f"sqlite:///{kedro_project / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("stable-audio-ops")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["autoencoder.train.max_steps"] == "6"
    assert run.data.metrics["data.readable"] == 8
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"autoencoder", "demos", "configs"} <= artifacts
    assert "autoencoder.final_loss" in run.data.metrics
