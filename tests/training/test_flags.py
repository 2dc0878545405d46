"""Every train.py flag of defaults.ini reaches the Lightning Trainer or the model, as the ini documents.

Most checks build the Trainer from a parsed command line without fitting (fast); one short run
checks validation, checkpoint cadence and retention end to end.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy

from stable_audio_ops.cli.args import parse_args_from_ini
from stable_audio_ops.cli.train import main as train_main
from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.checkpointing import (
    AtomicCheckpointIO,
    check_resume_checkpoint,
    resolve_resume_path,
)
from stable_audio_ops.training.distributed import plan_distribution, rank_seed, read_rank_reports
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.initial_weights import load_initial_weights
from stable_audio_ops.training.options import TrainOptions
from stable_audio_ops.training.run import run_training
from stable_audio_ops.training.trainer import build_trainer, make_checkpoint_callback, resolve_precision
from tests.training.train_fixtures import TINY_AE, tiny_model_config, write_tone_dataset


def _options(argv: list[str]) -> TrainOptions:
    options, _ = TrainOptions.from_mapping(vars(parse_args_from_ini(argv)))
    return options


def _trainer(options: TrainOptions, manual: bool, save_dir: Path, has_val: bool = True):
    plan = plan_distribution(options.strategy, options.num_gpus, options.num_nodes, "cpu")
    precision, _ = resolve_precision(options.precision, "cpu")
    callbacks = [make_checkpoint_callback(options, save_dir)]
    return build_trainer(options, plan, precision, manual, callbacks, None, save_dir, has_val=has_val)


def test_command_line_flags_reach_the_trainer(tmp_path: Path) -> None:
    options = _options([
        "--precision", "bf16-mixed", "--gradient-clip-val", "0.5", "--accum-batches", "3",
        "--val-every", "5", "--save-top-k", "2", "--checkpoint-every", "7", "--max-steps", "11",
        "--num-gpus", "2", "--strategy", "ddp", "--num-nodes", "1",
    ])
    trainer = _trainer(options, manual=False, save_dir=tmp_path)
    assert trainer.precision == "bf16-mixed"
    assert trainer.gradient_clip_val == 0.5 and trainer.accumulate_grad_batches == 3
    assert trainer.val_check_interval == 5 and trainer.check_val_every_n_epoch is None
    assert trainer.max_steps == 11
    checkpoint = next(cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint))
    assert checkpoint.save_top_k == 2 and checkpoint._every_n_train_steps == 7 and checkpoint.save_last
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2 and trainer.num_nodes == 1
    assert trainer.strategy._get_process_group_backend() == "gloo"  # CPU processes talk over gloo
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)

    # manual optimization (the autoencoder) does its own clipping; no accumulation reaches Lightning
    manual = _trainer(_options(["--gradient-clip-val", "0.5"]), manual=True, save_dir=tmp_path, has_val=False)
    assert manual.gradient_clip_val is None and manual.accumulate_grad_batches == 1
    assert manual.val_check_interval == 1.0  # no validation set: val_every is not applied


def test_precision_choices_on_cpu() -> None:
    assert resolve_precision("32", "cpu") == ("32", None)
    assert resolve_precision("bf16-mixed", "cpu") == ("bf16-mixed", None)
    precision, note = resolve_precision("16-mixed", "cpu")  # the ini default; fp16 has no CPU path
    assert precision == "32" and "not available on CPU" in note


def test_strategy_mapping(tmp_path: Path) -> None:
    single = plan_distribution("auto", 1, 1, "cpu")
    assert (single.strategy, single.devices, single.world_size) == ("auto", 1, 1)

    cpu_ddp = plan_distribution("auto", 2, 1, "cpu")
    assert cpu_ddp.strategy == "ddp" and cpu_ddp.devices == 2 and any("gloo" in n for n in cpu_ddp.notes)

    gan = plan_distribution("ddp", 2, 1, "cpu", find_unused_parameters=True)
    assert isinstance(gan.strategy, DDPStrategy) and gan.strategy._ddp_kwargs["find_unused_parameters"] is True

    explicit = plan_distribution("ddp_find_unused_parameters_true", 4, 2, "gpu")
    assert (explicit.strategy, explicit.devices, explicit.num_nodes, explicit.world_size) == (
        "ddp_find_unused_parameters_true", 4, 2, 8)

    with pytest.raises(ConfigError, match="fsdp needs CUDA GPUs"):
        plan_distribution("fsdp", 2, 1, "cpu")
    with pytest.raises(ConfigError, match="use ddp"):
        plan_distribution("ddp_spawn", 2, 1, "cpu")
    with pytest.raises(ConfigError, match="unknown strategy 'dpp'.*known: .*ddp"):
        plan_distribution("dpp", 2, 1, "cpu")

    # the GAN autoencoder asks for unused-parameter detection (discriminator steps skip the autoencoder)
    config = json.loads(TINY_AE.read_text())
    module = create_training_module_from_config(config, create_model_from_config(config))
    assert module.ddp_find_unused_parameters is True
    del config["training"]["loss_configs"]["discriminator"]
    plain = create_training_module_from_config(config, create_model_from_config(config))
    assert plain.ddp_find_unused_parameters is False


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed here")
def test_deepspeed_without_the_package_is_a_clear_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match="pip install deepspeed"):
        plan_distribution("deepspeed", 1, 1, "gpu")
    dataset = write_tone_dataset(tmp_path / "data", files=2)
    code = train_main(["--model-config", str(TINY_AE), "--dataset-config", str(dataset), "--strategy", "deepspeed",
                       "--batch-size", "2", "--num-workers", "0", "--logger", "none",
                       "--save-dir", str(tmp_path / "ckpt")])
    assert code == 2 and "pip install deepspeed" in capsys.readouterr().err


def test_seed_gets_the_rank_added(monkeypatch) -> None:
    for var in ("SLURM_PROCID", "RANK", "LOCAL_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert rank_seed(42) == 42
    monkeypatch.setenv("NODE_RANK", "1")  # what Lightning's launcher sets on node 1 ...
    monkeypatch.setenv("LOCAL_RANK", "1")  # ... for its second process
    assert rank_seed(42, devices_per_node=2) == 45
    monkeypatch.setenv("RANK", "5")  # torchrun
    assert rank_seed(42, devices_per_node=2) == 47
    monkeypatch.setenv("SLURM_PROCID", "3")  # upstream's variable wins
    assert rank_seed(42) == 45


def test_pretrained_checkpoint_strict_by_default_partial_on_request(tmp_path: Path, caplog) -> None:
    config = json.loads(TINY_AE.read_text())
    changed = json.loads(json.dumps(config))
    changed["model"]["encoder"]["config"]["channels"] = 8  # e.g. a retrained encoder; decoder unchanged
    donor = create_model_from_config(changed)
    path = tmp_path / "donor.safetensors"
    save_model_checkpoint(donor.state_dict(), path)

    options = _options(["--pretrained-ckpt-path", str(path)])
    assert options.pretrained_ckpt_strict is True
    with pytest.raises(CheckpointError, match=r"shape mismatch \(checkpoint vs model\) \([1-9]"):
        load_initial_weights(create_model_from_config(config), options)

    options = _options(["--pretrained-ckpt-path", str(path), "--pretrained-ckpt-strict", "false"])
    model = create_model_from_config(config)
    with caplog.at_level(logging.INFO, logger="stable_audio_ops.training.initial_weights"):
        load_initial_weights(model, options)
    report = caplog.text
    assert f"--pretrained-ckpt-path {path}" in report and "shape mismatch" in report and "loaded " in report
    for key, value in donor.decoder.state_dict().items():  # what fits was copied
        torch.testing.assert_close(model.decoder.state_dict()[key], value)


def test_resume_path_checks(tmp_path: Path) -> None:
    model = create_model_from_config(json.loads(TINY_AE.read_text()))
    released = tmp_path / "model.safetensors"
    save_model_checkpoint(model.state_dict(), released)
    with pytest.raises(CheckpointError, match="--pretrained-ckpt-path"):
        check_resume_checkpoint(str(released))
    weights_only = tmp_path / "model.ckpt"
    save_model_checkpoint(model.state_dict(), weights_only)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        check_resume_checkpoint(str(weights_only))
    with pytest.raises(CheckpointError, match="no such file"):
        check_resume_checkpoint(str(tmp_path / "missing.ckpt"))
    assert resolve_resume_path("last", tmp_path / "empty") is None
    assert resolve_resume_path("", tmp_path) is None


def test_validation_and_checkpoint_cadence_in_a_run(tmp_path: Path) -> None:
    dataset = write_tone_dataset(tmp_path / "train", files=4)
    val = write_tone_dataset(tmp_path / "val", files=2)
    save_dir = tmp_path / "ckpt"
    options = _options([
        "--model-config", str(tiny_model_config(tmp_path)), "--dataset-config", str(dataset),
        "--val-dataset-config", str(val), "--val-every", "2", "--save-top-k", "2", "--checkpoint-every", "2",
        "--max-steps", "6", "--batch-size", "2", "--num-workers", "0", "--logger", "none", "--precision", "32",
        "--save-dir", str(save_dir), "--seed", "7", "--accelerator", "cpu",
    ])
    result = run_training(options)
    assert result.last_step == 6
    assert "val/mrstft_loss" in result.metrics and "val/l1_time_loss" in result.metrics
    names = sorted(p.name for p in save_dir.glob("*.ckpt"))
    assert names == ["epoch=1-step=4.ckpt", "epoch=2-step=6.ckpt", "last.ckpt"]  # step 2 rotated out
    (report,) = read_rank_reports(save_dir / "ranks")
    assert report["seed"] == 7 and report["batches"] == 6 and report["world_size"] == 1
