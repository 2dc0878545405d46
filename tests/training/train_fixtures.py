"""Shared set-up for the training-process tests: tone datasets, the tiny autoencoder config, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
TINY_AE = REPO / "tests" / "fixtures" / "configs" / "autoencoder_tiny.json"
QUIET_ENV = {"DO_NOT_TRACK": "true", "KEDRO_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
             "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def write_tone_dataset(folder: Path, files: int = 8, seconds: float = 0.5, sample_rate: int = 16000) -> Path:
    """``files`` sine tones of different pitch + an ``audio_dir`` dataset config; returns the config path."""
    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for i in range(files):
        tone = 0.3 * np.sin(2 * np.pi * 110 * (i + 1) * t)
        sf.write(audio / f"tone{i}.wav", tone.astype(np.float32), sample_rate)
    config = folder / "dataset.json"
    config.write_text(json.dumps({"dataset_type": "audio_dir", "datasets": [{"id": "tones", "path": str(audio)}]}))
    return config


def tiny_model_config(folder: Path, scheduler: bool = False) -> Path:
    """The tiny VAE autoencoder (EMA on); with ``scheduler`` an InverseLR on the autoencoder optimizer."""
    config = json.loads(TINY_AE.read_text())
    if scheduler:
        config["training"]["optimizer_configs"]["autoencoder"]["scheduler"] = {
            "type": "InverseLR", "config": {"inv_gamma": 100, "power": 0.5, "warmup": 0.9}}
    path = folder / "model_config.json"
    path.write_text(json.dumps(config))
    return path


def train_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m stable_audio_ops.cli.train ARGS`` in ``cwd`` (1 torch thread per process)."""
    env = dict(os.environ, **QUIET_ENV)
    for var in ("MLFLOW_TRACKING_URI", "RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "SLURM_PROCID"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "stable_audio_ops.cli.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
