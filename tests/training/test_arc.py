"""ARC post-training: wrapper layout, which side each step moves, a short adversarial run, teacher/discriminator
from checkpoints, ODE warm-up, config errors, and unwrap -> pingpong generation of the student."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.inference.generation import generate_diffusion_cond
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import load_local_model
from stable_audio_ops.sampling.samplers import get_sampler
from stable_audio_ops.training.arc import ARCTrainingModule, renoise, rolled_metadata
from stable_audio_ops.training.diffusion import diffusion_input
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.unwrap import unwrap_checkpoint

BASE = json.loads((Path(__file__).parents[1] / "fixtures" / "configs" / "dit_tiny.json").read_text())
HEAD = {"channels": 16, "c_mults": [1], "strides": [2], "num_blocks": [1]}


def arc_config(**arc) -> dict:
    """The tiny DiT as an rf_denoiser student with an ARC section (discriminator = the student's config)."""
    config = copy.deepcopy(BASE)
    config["model"]["diffusion"]["diffusion_objective"] = "rf_denoiser"
    config["training"].pop("demo")
    config["training"]["optimizer_configs"] = {
        "diffusion": {"optimizer": {"type": "AdamW", "config": {"lr": 1e-3, "weight_decay": 0.0}}},
        "discriminator": {"optimizer": {"type": "AdamW", "config": {"lr": 3e-3, "weight_decay": 0.0}}},
    }
    config["training"]["arc"] = {"use_model_as_discriminator": True,
                                 "discriminator": {"dit_hidden_layer": 0, "config": dict(HEAD)}, **arc}
    return config


def _module(config: dict) -> ARCTrainingModule:
    torch.manual_seed(0)
    return create_training_module_from_config(config, create_model_from_config(config), source="arc.json")


def _batch(n: int = 4):
    t = torch.arange(512) / 16000
    freqs = [440.0, 660.0, 880.0, 330.0]
    audio = torch.stack([0.5 * torch.sin(2 * torch.pi * freqs[i % 4] * t)[None] for i in range(n)])
    prompts = ["flute", "organ", "piano", "flute"]
    meta = tuple({"prompt": prompts[i % 4], "seconds_total": 0.03, "padding_mask": torch.ones(512)} for i in range(n))
    return audio, meta


class _Snapshots(pl.Callback):
    """State dict after every batch (the wrapper's parameters and buffers, cloned)."""

    def __init__(self):
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def _fit(module: ARCTrainingModule, steps: int, callbacks=()) -> pl.Trainer:
    batch = _batch()
    loader = torch.utils.data.DataLoader([0] * steps, batch_size=1, collate_fn=lambda _: batch)
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", callbacks=list(callbacks))
    trainer.fit(module, loader)
    return trainer


def _changed(before: dict, after: dict, prefix: str) -> set[str]:
    return {k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])}


def test_wrapper_layout_is_upstreams_and_reloads_strictly(tmp_path: Path) -> None:
    student = create_model_from_config(arc_config())
    save_model_checkpoint(student.state_dict(), tmp_path / "teacher.safetensors")
    config = arc_config(use_model_as_teacher=True, teacher_model_ckpt=str(tmp_path / "teacher.safetensors"))
    module = _module(config)
    keys = set(module.state_dict())
    assert {k.split(".")[0] for k in keys} == {"diffusion", "diffusion_ema", "teacher_model", "discriminator",
                                               "discriminator_head"}
    assert "discriminator.model.model.transformer.layers.0.self_attn.to_qkv.weight" in keys
    assert "discriminator.pretransform.model.encoder.layers.0.weight_v" in keys  # a whole model, as upstream
    assert "teacher_model.conditioner.conditioners.seconds_total.embedder.embedding.0.weights" in keys
    assert "discriminator_head.encoder.proj_in.weight_g" in keys
    assert "diffusion_ema.ema_model.model.transformer.layers.0.self_attn.to_qkv.weight" in keys
    assert not any(k.startswith(("losses.", "diffusion_ema.online_model.")) for k in keys)
    _module(config).load_state_dict(module.state_dict(), strict=True)


def test_generator_step_moves_only_the_student_and_discriminator_step_only_the_discriminator() -> None:
    module = _module(arc_config())
    initial = {k: v.detach().clone() for k, v in module.state_dict().items()}
    snaps = _Snapshots()
    _fit(module, 2, [snaps])
    after_gen, after_dis = snaps.states

    # step 1 (generator): the student backbone moves (and its EMA counts the update), nothing else
    assert _changed(initial, after_gen, "diffusion.model.")
    assert not _changed(initial, after_gen, "discriminator.") and not _changed(initial, after_gen, "discriminator_head.")
    assert not _changed(initial, after_gen, "diffusion.pretransform.")
    assert int(after_gen["diffusion_ema.step"]) == 1
    # ... updated before the step (0.0.19 and 0.0.20): its copy phase holds the weights the step started from
    assert not _changed(initial, after_gen, "diffusion_ema.ema_model.")

    # step 2 (discriminator): the DiT body up to the exit layer and the head move; the student does not
    assert not _changed(after_gen, after_dis, "diffusion.") and not _changed(after_gen, after_dis, "diffusion_ema.")
    assert _changed(after_gen, after_dis, "discriminator_head.")
    body = _changed(after_gen, after_dis, "discriminator.model.model.transformer.layers.0.")
    assert body
    # blocks after dit_hidden_layer and the output convolution take no part in the score
    assert not _changed(after_gen, after_dis, "discriminator.model.model.transformer.layers.1.")
    assert not _changed(after_gen, after_dis, "discriminator.model.model.postprocess_conv.")
    assert not _changed(after_gen, after_dis, "discriminator.pretransform.")


def _margin(module: ARCTrainingModule) -> float:
    """Mean D(real) - D(fake) on the toy batch at fixed noise levels and noise (independent of the run's RNG)."""
    audio, meta = _batch()
    state = torch.random.get_rng_state()
    torch.manual_seed(7)  # the VAE draws its latents, as in training
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        x, _ = diffusion_input(module.diffusion, audio, meta, pre_encoded=False)
        torch.random.set_rng_state(state)
        t = torch.tensor([0.3, 0.5, 0.7, 0.9])
        x_t = renoise(x, torch.randn(x.shape, generator=gen), t)
        cond = module.diffusion.conditioner(list(meta), "cpu")
        fake = x_t - t[:, None, None] * module.diffusion(x_t, t, cond=cond)
        t_gan = torch.full((4,), 0.4)
        noise = torch.randn(x.shape, generator=gen)
        dcond = module.discriminator.conditioner(list(meta), "cpu")
        real_s = module.score(renoise(x, noise, t_gan), t_gan, dcond)
        fake_s = module.score(renoise(fake, noise, t_gan), t_gan, dcond)
    return (real_s - fake_s).mean().item()


def test_ema_settings_follow_0_0_20() -> None:
    ema = _module(arc_config()).diffusion_ema
    assert (ema.beta, ema.power, ema.update_every, ema.update_after_step) == (0.9995, 0.75, 1, 1)
    assert not ema.include_online_model
    # the warm-up caps at 0.9995 (0.0.19: 0.9999) from the 25,200th update on: bit-identical to 0.0.19 before that
    ema.step.fill_(25_199)
    assert ema.get_current_decay() < 0.9995
    ema.step.fill_(25_200)
    assert ema.get_current_decay() == 0.9995


def test_short_run_discriminator_margin_grows_and_student_stays_finite() -> None:
    module = _module(arc_config(discriminator={"dit_hidden_layer": 0, "config": dict(HEAD), "contrastive": True,
                                               "include_grad_penalties": True}))
    before = _margin(module)
    trainer = _fit(module, 10)
    after = _margin(module)
    assert after > before + 0.5, (before, after)
    assert all(torch.isfinite(p).all() for p in module.diffusion.parameters())
    metrics = trainer.callback_metrics
    for key in ("train/gen_loss", "train/dis_loss", "train/contrastive_loss_dis", "train/grad_penalty_loss",
                "train/disc_margin"):
        assert torch.isfinite(metrics[key]), key
    assert int(module.diffusion_ema.step) == 5  # EMA moves on generator steps only


def test_student_learns_to_fool_a_fixed_discriminator() -> None:
    config = arc_config()
    config["training"]["optimizer_configs"]["discriminator"]["optimizer"]["config"]["lr"] = 0.0
    module = _module(config)
    before = _margin(module)
    _fit(module, 30)
    after = _margin(module)
    assert after < before - 0.25, (before, after)  # its one-jump samples now score higher than before


def test_teacher_and_discriminator_start_from_the_checkpoint_and_ode_warmup_regresses_onto_the_teacher(
        tmp_path: Path) -> None:
    torch.manual_seed(1)
    trained = create_model_from_config(arc_config())
    save_model_checkpoint(trained.state_dict(), tmp_path / "dit.safetensors")
    ckpt = str(tmp_path / "dit.safetensors")
    config = arc_config(use_model_as_teacher=True, teacher_model_ckpt=ckpt, discriminator_base_ckpt=ckpt,
                        ode_warmup={"warmup_steps": 2, "sampling_steps": 4, "cfg": 2.0, "refresh_rate": 1})
    module = _module(config)
    for name, value in trained.state_dict().items():
        assert torch.equal(module.teacher_model.state_dict()[name], value), name
        assert torch.equal(module.discriminator.state_dict()[name], value), name
    teacher_before = {k: v.clone() for k, v in module.teacher_model.state_dict().items()}
    disc_before = {k: v.clone() for k, v in module.discriminator.state_dict().items()}
    student_before = {k: v.clone() for k, v in module.diffusion.state_dict().items()}
    trainer = _fit(module, 2)
    assert torch.isfinite(trainer.callback_metrics["train/ode_mse_loss"])
    assert "train/gen_loss" not in trainer.callback_metrics  # both steps were warm-up steps
    assert _changed(student_before, module.diffusion.state_dict(), "model.")
    assert not _changed(teacher_before, module.teacher_model.state_dict(), "")
    assert not _changed(disc_before, module.discriminator.state_dict(), "")
    assert not module.teacher_model.training
    # warm-up steps update the EMA after the optimizer step (upstream): its copy phase holds the stepped student
    ema = module.diffusion_ema
    assert int(ema.step) == 2
    student = module.diffusion.model.state_dict()
    assert all(torch.equal(value, student[key]) for key, value in ema.ema_model.state_dict().items())


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["training"]["arc"].pop("use_model_as_discriminator"),
     r"training\.arc\.discriminator_base_model: missing required key"),
    (lambda c: c["training"]["arc"]["discriminator"].pop("dit_hidden_layer"),
     r"training\.arc\.discriminator\.dit_hidden_layer: missing required key"),
    (lambda c: c["training"]["arc"]["discriminator"].update(dit_hidden_layer=2),
     r"training\.arc\.discriminator\.dit_hidden_layer: the discriminator DiT has 2 blocks"),
    (lambda c: c["training"]["optimizer_configs"].pop("discriminator"),
     r"training\.optimizer_configs\.discriminator: missing required key"),
    (lambda c: c["training"]["arc"].update(use_model_as_teacher=True),
     r"training\.arc\.teacher_model_ckpt: missing required key"),
    (lambda c: c["training"]["arc"].update(ode_warmup={"warmup_steps": 5}),
     r"training\.arc\.teacher_model: missing required key .*ode_warmup needs a teacher"),
    (lambda c: c["training"]["arc"].update(noise_dist={"generator": "gaussian"}),
     r"training\.arc\.noise_dist\.generator: unknown ARC noise distribution 'gaussian'"),
    (lambda c: c["training"]["arc"].update(discriminatr={}),
     r"training\.arc\.discriminatr: unknown key"),
    (lambda c: c["model"]["diffusion"].update(diffusion_objective="v"),
     r"model\.diffusion\.diffusion_objective: ARC post-training needs a rectified-flow model"),
])
def test_config_errors_name_the_key(edit, message) -> None:
    config = arc_config()
    edit(config)
    with pytest.raises(ConfigError, match=message) as info:
        _module(config)
    assert str(info.value).startswith("arc.json: ")


def test_contrastive_prompts_are_rolled_by_one_without_touching_the_batch() -> None:
    meta = [{"prompt": "a", "seconds_total": 1}, {"prompt": "b", "seconds_total": 2}, {"prompt": "c", "seconds_total": 3}]
    rolled = rolled_metadata(meta)
    assert [m["prompt"] for m in rolled] == ["b", "c", "a"]
    assert [m["seconds_total"] for m in rolled] == [1, 2, 3]
    assert [m["prompt"] for m in meta] == ["a", "b", "c"]


def test_unwrapped_arc_checkpoint_is_a_plain_student_that_generates_with_pingpong(tmp_path: Path) -> None:
    config = arc_config()
    module = _module(config)
    trainer = _fit(module, 2)
    trainer.save_checkpoint(tmp_path / "arc.ckpt")
    out = unwrap_checkpoint(config, tmp_path / "arc.ckpt", tmp_path / "student")
    state = load_ckpt_state_dict(out)
    assert not any(k.startswith(("discriminator", "teacher_model", "diffusion")) for k in state)
    exported = module.export_state_dict()
    assert set(state) == set(exported)
    assert all(torch.equal(state[k], exported[k]) for k in state)  # the EMA backbone, online conditioner

    loaded = load_local_model(out)
    assert loaded.model.diffusion_objective == "rf_denoiser"
    assert get_sampler("rf_denoiser").name == "pingpong"
    audio = generate_diffusion_cond(loaded.model, steps=4, cfg_scale=1.0, batch_size=2, sample_size=512, seed=3,
                                    conditioning=[{"prompt": "flute", "seconds_total": 0.03}] * 2, progress=False)
    assert audio.shape == (2, 1, 512) and torch.isfinite(audio).all()
