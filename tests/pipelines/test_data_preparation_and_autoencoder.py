"""`kedro run --pipelines=data_preparation,autoencoder` end to end on a tiny config, checked through MLflow."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from tests.pipelines.conftest import run_kedro

pytestmark = pytest.mark.slow


def test_data_preparation_then_autoencoder(kedro_project: Path) -> None:
    raw = kedro_project / "data" / "01_raw" / "extra"
    raw.mkdir(parents=True)
    (raw / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")  # must be skipped and reported, not fatal
    take = (0.3 * np.sin(np.arange(16000) / 4)).astype(np.float32)
    sf.write(os.fsencode(raw) + b"/caf\xe9.wav", take, 16000)  # valid, named on a Latin-1 machine: trains
    take[9000] = np.nan
    sf.write(raw / "nan.wav", take, 16000, subtype="FLOAT")  # corrupt: skipped and counted
    (raw / "loop.wav").symlink_to(raw / "loop.wav")  # reported like training reports it

    result = run_kedro(kedro_project, "--pipelines=data_preparation,autoencoder")

    # data_preparation: manifest, report and dataset config
    summary = json.loads((kedro_project / "data/08_reporting/data_summary.json").read_text(encoding="utf-8"))
    assert summary["readable"] == 9  # 2 instruments x 2 notes x 2 velocities + the Latin-1 named take
    assert summary["skipped"] == 3
    assert summary["skipped_reasons"] == {"cannot open": 1, "cannot stat": 1, "non-finite samples": 1}
    report = (kedro_project / "data/08_reporting/data_report.md").read_text(encoding="utf-8")
    for line in ("| `broken.wav` | cannot open", "| `loop.wav` | cannot stat", "| `nan.wav` | non-finite samples"):
        assert line in report
    dataset_config = json.loads((kedro_project / "data/03_primary/dataset_config.json").read_text())
    assert dataset_config["dataset_type"] == "audio_dir"
    # training reads the train split only: 6 of the 8 clips (one velocity of every second pitch is held out)
    # and the one readable take of extra/ (a folder of one file keeps it for training)
    split = json.loads((kedro_project / "data/03_primary/split.json").read_text())
    assert split["counts"] == {"train": 7, "test": 2}
    assert [s["path"] for s in dataset_config["datasets"]] == ["data/03_primary/splits/train/demo_notes",
                                                               "data/03_primary/splits/train/extra"]
    assert os.listdir(os.fsencode(kedro_project / "data/03_primary/splits/train/extra")) == [b"caf\xe9.wav"]
    assert re.search(r"Found\s+7\s+audio\s+files\s+\(0\s+skipped\)", result.stdout + result.stderr)

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
    assert run.data.metrics["data.readable"] == 9
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"autoencoder", "demos", "configs"} <= artifacts
    assert "autoencoder.final_loss" in run.data.metrics
