"""Shared set-up for the training-process tests: tone datasets, the tiny autoencoder config, CLI runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
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


def train_env(**extra: str) -> dict[str, str]:
    """This process's environment for a training process: quiet, 1 torch thread, no inherited ranks."""
    env = dict(os.environ, **QUIET_ENV)
    for var in ("MLFLOW_TRACKING_URI", "RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "SLURM_PROCID"):
        env.pop(var, None)
    return {**env, **extra}


def train_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m stable_audio_ops.cli.train ARGS`` in ``cwd`` (1 torch thread per process)."""
    return subprocess.run([sys.executable, "-m", "stable_audio_ops.cli.train", *args], cwd=cwd, env=train_env(),
                          capture_output=True, text=True, timeout=timeout)


def start_train_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None,
                    capture: bool = False) -> subprocess.Popen:
    """Start the train CLI in its own session (signals sent to it reach nothing else); with ``capture`` its
    output is kept (read it after the process ended), else discarded."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "stable_audio_ops.cli.train", *args], cwd=cwd,
                            env=env or train_env(), stdout=out, stderr=out, text=True, start_new_session=True,
                            preexec_fn=_sigint_as_in_a_terminal)


def _sigint_as_in_a_terminal() -> None:
    """Give the run the default SIGINT disposition a terminal gives it: a test suite started as a background job
    (``pytest &``, nohup) passes SIGINT on as *ignored*, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tiny_train_args(tmp_path: Path, max_steps: int, every: int) -> list[str]:
    """Flags for a tiny autoencoder run on tones in ``tmp_path`` (checkpoints in ``tmp_path/ckpt``)."""
    dataset = write_tone_dataset(tmp_path / "data", files=4)
    model_config = tiny_model_config(tmp_path, scheduler=True)
    return ["--model-config", str(model_config), "--dataset-config", str(dataset), "--save-dir",
            str(tmp_path / "ckpt"), "--batch-size", "2", "--num-workers", "0", "--max-steps", str(max_steps),
            "--checkpoint-every", str(every), "--precision", "32", "--logger", "none", "--accelerator", "cpu"]


def wait_for_checkpoint(process: subprocess.Popen, save_dir: Path, step: int, timeout: float = 180) -> None:
    """Block until ``last.ckpt`` holds at least ``step`` (the periodic checkpoint of that step is complete)."""
    import torch

    deadline = time.monotonic() + timeout
    last = save_dir / "last.ckpt"
    while True:
        assert process.poll() is None, f"training ended (exit {process.returncode}) before step {step}"
        assert time.monotonic() < deadline, f"no checkpoint of step {step} after {timeout} s"
        if list(save_dir.glob(f"*step={step}.ckpt")) and last.is_file():
            with contextlib.suppress(Exception):  # replaced while being read: try again
                if torch.load(last, map_location="cpu", weights_only=True)["global_step"] >= step:
                    return
        time.sleep(0.02)
