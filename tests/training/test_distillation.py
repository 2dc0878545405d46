"""training.teacher_model + teacher_model_ckpt: loss terms, frozen teacher, gradients, checkpoint keys, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.unwrap import select_model_state_dict
from tests.training.autoencoder_fixtures import build, fit, snapshot, tiny_config, tones

DISTILL_TERMS = ["mrstft_loss", "mrstft_loss_distill", "mrstft_loss_own_latents_teacher",
                 "mrstft_loss_teacher_latents_own"]


def teacher_setup(tmp_path, discriminator: bool = False, trained: bool = False, **training) -> dict:
    """A student config whose teacher is the tiny autoencoder: seeded random weights, or with ``trained`` fitted
    to the test tones for 30 steps (a teacher worth copying), saved as a model checkpoint."""
    torch.manual_seed(3)  # an initialisation from which 30 steps give a good teacher (1.04 -> 0.29 mrstft)
    teacher_config = tiny_config()
    if trained:
        pretraining = build(teacher_config)
        fit(pretraining, tones(teacher_config), steps=30, seed=3)
        teacher = pretraining.autoencoder
    else:
        teacher = create_model_from_config(teacher_config)
    del teacher_config["training"]
    ckpt = tmp_path / "teacher.safetensors"
    save_model_checkpoint(teacher.state_dict(), ckpt, model_config=teacher_config)
    config = tiny_config(discriminator=discriminator)
    config["training"].update(teacher_model=teacher_config, teacher_model_ckpt=str(ckpt), **training)
    return config


def test_distillation_terms_replace_mrstft_at_a_quarter_weight(tmp_path):
    config = teacher_setup(tmp_path)
    config["training"]["loss_configs"]["spectral"]["weights"]["mrstft"] = 2.0
    config["training"]["loss_configs"]["latent_distillation"] = {"weights": {"l1": 0.0, "l2": 0.3}}
    module = build(config)
    assert module.losses_gen.names == [*DISTILL_TERMS, "latent_distill_l2", "kl_loss"]
    assert [float(t.weight) for t in module.losses_gen.losses] == pytest.approx([0.5] * 4 + [0.3, 1e-4])
    assert not any(p.requires_grad for p in module.teacher_model.parameters())


def test_distillation_terms_fall_and_teacher_stays_frozen(tmp_path):
    module = build(teacher_setup(tmp_path, trained=True))
    teacher_before = snapshot(module.teacher_model)
    rows = fit(module, tones(tiny_config()), steps=16)
    first, last = rows[0], rows[-1]
    for name in DISTILL_TERMS:  # each falls: own reconstruction, match to the teacher, both cross decodings
        assert last[f"train/{name}"] < 0.7 * first[f"train/{name}"], (name, first, last)
    assert not module.teacher_model.training
    for key, value in module.teacher_model.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


def test_cross_decoding_terms_send_gradients_into_the_student(tmp_path):
    """0.0.20 computes both cross decodings under no_grad; here each trains the part of the student it names."""
    module = build(teacher_setup(tmp_path))
    module.train()
    info = module._reconstruct(tones(tiny_config()), warmed_up=True)
    from stable_audio_ops.training.distillation import add_teacher_outputs

    add_teacher_outputs(info, module.autoencoder, module.teacher_model)
    by_name = {t.name: t for t in module.losses_gen.losses}
    by_name["mrstft_loss_own_latents_teacher"](info).backward(retain_graph=True)
    encoder_grads = [p.grad for p in module.autoencoder.encoder.parameters() if p.grad is not None]
    assert encoder_grads and any(g.abs().sum() > 0 for g in encoder_grads)
    assert all(p.grad is None for p in module.autoencoder.decoder.parameters())
    by_name["mrstft_loss_teacher_latents_own"](info).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.autoencoder.decoder.parameters())
    assert all(p.grad is None for p in module.teacher_model.parameters())


def test_checkpoint_with_teacher_loads_strictly_and_unwraps_to_the_student(tmp_path):
    config = teacher_setup(tmp_path, discriminator=True, warmup_steps=2)
    module = build(config)
    rows = fit(module, tones(config), steps=6)
    assert "train/loss_adv_cross_decoded_vs_teacher" in rows[-2]  # a generator step after warm-up
    state = module.state_dict()
    assert any(k.startswith("teacher_model.") for k in state)
    fresh = build(copy.deepcopy(config))
    fresh.load_state_dict(state, strict=True)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in state.items())
    student = select_model_state_dict(config, state)
    assert not any(k.startswith("teacher_model.") for k in student)
    create_model_from_config(config).load_state_dict(student, strict=True)


def test_teacher_config_errors_name_the_key(tmp_path):
    config = teacher_setup(tmp_path)
    missing = copy.deepcopy(config)
    del missing["training"]["teacher_model_ckpt"]
    with pytest.raises(ConfigError, match=r"training\.teacher_model_ckpt: missing required key"):
        build(missing, source="m.json")
    absent = copy.deepcopy(config)
    absent["training"]["teacher_model_ckpt"] = str(tmp_path / "nope.ckpt")
    with pytest.raises(ConfigError, match="teacher_model_ckpt: no such file"):
        build(absent)
    alone = copy.deepcopy(config)
    del alone["training"]["teacher_model"]
    with pytest.raises(ConfigError, match="teacher_model_ckpt: given without training.teacher_model"):
        build(alone)
    # a teacher of another latent size: its checkpoint no longer fits the built teacher, or the student
    wide = copy.deepcopy(config)
    wide["training"]["teacher_model"]["model"]["latent_dim"] = 6
    wide["training"]["teacher_model"]["model"]["decoder"]["config"]["latent_dim"] = 6
    wide["training"]["teacher_model"]["model"]["encoder"]["config"]["latent_dim"] = 12
    teacher = create_model_from_config(wide["training"]["teacher_model"])
    save_model_checkpoint(teacher.state_dict(), tmp_path / "wide.safetensors")
    wide["training"]["teacher_model_ckpt"] = str(tmp_path / "wide.safetensors")
    with pytest.raises(ConfigError, match=r"training\.teacher_model\.model\.latent_dim: the teacher's latent_dim is 6"):
        build(wide)
