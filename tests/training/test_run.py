"""run_training in-process: resume, strict pretrained loading, CPU precision, option checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.errors import CheckpointError, ConfigError, DatasetError
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.options import TrainOptions
from stable_audio_ops.training.run import run_training
from stable_audio_ops.training.trainer import resolve_accelerator, resolve_precision
from stable_audio_ops.utils.ranks import process_rank

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "unwrap_autoencoder"


@pytest.fixture
def setup(tmp_path: Path) -> TrainOptions:
    audio = tmp_path / "audio"
    audio.mkdir()
    t = np.arange(1600) / 16000
    for i in range(2):
        sf.write(audio / f"a{i}.wav", (0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t)).astype(np.float32), 16000)
    (tmp_path / "ds.json").write_text(json.dumps({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": str(audio)}]}))
    config = json.loads((FIXTURE / "model_config.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(config))
    return TrainOptions(model_config=str(tmp_path / "model.json"), dataset_config=str(tmp_path / "ds.json"),
                        batch_size=2, num_workers=0, logger="none", save_dir=str(tmp_path / "ckpt"),
                        checkpoint_every=1000, precision="32", max_steps=2)


def test_resume_continues_from_the_checkpoint(setup: TrainOptions):
    setup.max_steps = 10
    first = run_training(setup)
    assert first.last_step == 10 and first.checkpoint_path.name == "last.ckpt" and first.mlflow_run_id is None
    setup.max_steps, setup.ckpt_path = 12, str(first.checkpoint_path)
    second = run_training(setup)
    assert second.last_step == 12
    state = torch.load(second.checkpoint_path, map_location="cpu", weights_only=True)
    # 0.0.20 updates the EMA every 10 global steps (after the generator step at 8): the one update of the first
    # run is carried over; a restarted counter would read 0
    assert int(state["state_dict"]["autoencoder_ema.step"]) == 1
    assert len(state["optimizer_states"]) == 2 and "train/loss" in second.metrics


def test_pretrained_weights_load_strictly(setup: TrainOptions, tmp_path: Path):
    config = json.loads(Path(setup.model_config).read_text())
    wider = json.loads(json.dumps(config))
    wider["model"]["encoder"]["config"]["channels"] = 16
    save_model_checkpoint(create_model_from_config(wider).state_dict(), tmp_path / "other.safetensors")
    setup.pretrained_ckpt_path = str(tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        run_training(setup)


def test_option_errors(setup: TrainOptions):
    setup.accum_batches = 2
    with pytest.raises(ConfigError, match="accum-batches"):
        run_training(setup)
    setup.accum_batches, setup.batch_size = 1, 3  # 2 files, drop_last
    with pytest.raises(DatasetError, match="batch"):
        run_training(setup)
    setup.model_config = ""
    with pytest.raises(ConfigError, match="--model-config"):
        run_training(setup)


def test_cpu_precision_accelerator_and_rank(monkeypatch):
    assert resolve_precision("16-mixed", "cpu")[0] == "32"
    assert resolve_precision("bf16-mixed", "cpu") == ("bf16-mixed", None)
    assert resolve_precision("16-mixed", "gpu") == ("16-mixed", None)
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert resolve_accelerator("auto") == expected
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert process_rank() == 3
    monkeypatch.delenv("SLURM_PROCID")
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_rank() == 1


def test_options_from_parsed_flags_ignore_unknown_keys():
    options, unused = TrainOptions.from_mapping({"batch_size": 8, "wandb_config": "x"})
    assert options.batch_size == 8 and unused == ["wandb_config"]
    assert options.resolved_save_dir() == Path("checkpoints") / "stable_audio_ops"
