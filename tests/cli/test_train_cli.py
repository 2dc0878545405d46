"""`python train.py` then `python unwrap_model.py` as a user runs them (subprocesses, tiny audio, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "parity" / "unwrap_autoencoder"

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", DO_NOT_TRACK="true", MLFLOW_DISABLE_TELEMETRY="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def tiny_run(tmp_path: Path) -> dict[str, Path]:
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(3200) / 16000
    for i in range(4):
        tone = 0.4 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(audio / f"clip{i}.wav", tone.astype(np.float32), 16000, subtype="PCM_16")
    dataset = {"dataset_type": "audio_dir", "datasets": [{"id": "tiny", "path": str(audio)}], "random_crop": True}
    model = json.loads((FIXTURE / "model_config.json").read_text())
    model["sample_size"] = 1024
    model["training"]["demo"] = {"demo_every": 2}
    paths = {"dataset": tmp_path / "dataset.json", "model": tmp_path / "model.json", "root": tmp_path}
    paths["dataset"].write_text(json.dumps(dataset))
    paths["model"].write_text(json.dumps(model))
    return paths


def test_train_then_unwrap(tiny_run):
    from mlflow.tracking import MlflowClient

    from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
    from stable_audio_ops.models.factory import create_model_from_config

    root = tiny_run["root"]
    db = root / "mlflow.db"
    result = _run([str(REPO / "train.py"), "--model-config", str(tiny_run["model"]),
                   "--dataset-config", str(tiny_run["dataset"]), "--max-steps", "4", "--batch-size", "2",
                   "--num-workers", "0", "--checkpoint-every", "2", "--save-dir", "ckpts", "--logger", "mlflow",
                   "--mlflow-tracking-uri", f"sqlite:///{db}", "--name", "tiny"], cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "16-mixed is not available on CPU" in result.stdout

    model_config = json.loads(tiny_run["model"].read_text())
    last = root / "ckpts" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4 and ckpt["model_config"] == model_config
    periodic = sorted(p.name for p in (root / "ckpts").glob("epoch=*-step=*.ckpt"))
    assert [p.split("step=")[1] for p in periodic] == ["2.ckpt", "4.ckpt"]

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("stable-audio-ops").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_name == "tiny"
    run_id = runs[0].info.run_id
    assert run_id in result.stdout
    history = client.get_metric_history(run_id, "train/loss")
    # x = optimizer steps done: generator steps 1 and 3, discriminator steps 2 and 4
    assert [m.step for m in history] == [1, 3]
    assert [m.step for m in client.get_metric_history(run_id, "train/discriminator_loss")] == [2, 4]
    assert runs[0].data.params["model_config.sample_size"] == "1024"
    artifacts = {a.path for a in client.list_artifacts(run_id, "configs")}
    assert artifacts == {"configs/model_config.json", "configs/dataset_config.json"}
    demos = {a.path for a in client.list_artifacts(run_id, "demos")}
    assert demos == {"demos/step_000001", "demos/step_000003", "demos/step_000004"}
    files = {a.path for a in client.list_artifacts(run_id, "demos/step_000001")}
    assert files == {"demos/step_000001/recon.wav", "demos/step_000001/recon_spectrogram.png"}
    wav = Path(client.download_artifacts(run_id, "demos/step_000001/recon.wav", str(root)))
    info = sf.info(wav)
    assert info.subtype == "PCM_16" and info.frames == 2 * 2 * 1024  # real+recon for 2 demo items

    unwrap = _run([str(REPO / "unwrap_model.py"), "--model-config", str(tiny_run["model"]),
                   "--ckpt-path", str(last), "--name", "tiny_ae", "--output-dir", "export"], cwd=root)
    assert unwrap.returncode == 0, unwrap.stderr[-3000:]
    exported = root / "export" / "tiny_ae.safetensors"
    state = load_ckpt_state_dict(exported)
    load_state_dict_checked(create_model_from_config(model_config), state, strict=True)
    key = "decoder.layers.0.weight_v"
    # 0.0.20's autoencoder EMA updates every 10 global steps: after 4 its copy is still the initialisation, so
    # the export is the trained online model (not the untrained EMA copy upstream would write), with a warning
    assert int(ckpt["state_dict"]["autoencoder_ema.step"].item()) == 0
    assert torch.equal(state[key], ckpt["state_dict"][f"autoencoder.{key}"])
    assert not torch.equal(state[key], ckpt["state_dict"][f"autoencoder_ema.ema_model.{key}"])
    assert "never updated" in unwrap.stdout + unwrap.stderr


def test_unknown_flag_fails_naming_it(tmp_path):
    result = _run([str(REPO / "train.py"), "--num-epochs", "3"], cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert "--num-epochs" in result.stderr


def test_missing_config_is_a_clear_error(tmp_path, tiny_run):
    result = _run([str(REPO / "train.py"), "--model-config", str(tmp_path / "nope.json"),
                   "--dataset-config", str(tiny_run["dataset"]), "--logger", "none"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "nope.json" in result.stderr and "not found" in result.stderr
