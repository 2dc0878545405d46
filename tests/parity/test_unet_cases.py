"""Parity with stable-audio-tools 0.0.20 for the ADP U-Net model types.

- ``unet_adp_uncond``: ``diffusion_uncond`` / ``adp_uncond_1d``, one forward pass ``model(x, t)``.
- ``adp_cfg_cond``: ``diffusion_cond`` / ``adp_cfg_1d``: conditioner outputs, conditioning inputs and the
  backbone's forward pass unguided and with CFG (batched, sequential, rescaled); the wrapper call
  ``model(x, t, cond)``, which fails in 0.0.20, gives the same numbers here.
- ``diffusion_autoencoder``: Oobleck encoder + tanh bottleneck + ``adp_1d`` diffusion decoder: the
  latents, the nearest-upsampled conditioning, one U-Net forward pass, and a 4-step v-DDIM decode from
  the recorded ``decode_noise`` (and from the recorded seed, which must draw that same noise).

Models are built from model_config.json (through the model factory once the type is registered there,
otherwise through this package's builder for the type) and load strictly; tolerances come from case.json.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.models.checkpoints import load_state_dict_checked
from stable_audio_ops.models.diffusion_autoencoder import DiffusionAutoencoder, build_diffusion_autoencoder
from stable_audio_ops.models.diffusion_uncond import DiffusionModelWrapper, build_diffusion_uncond
from stable_audio_ops.models.factory import MODEL_TYPES
from tests.parity.harness import load_case, load_model

_BUILDERS = {"diffusion_uncond": build_diffusion_uncond, "diffusion_autoencoder": build_diffusion_autoencoder}


@functools.cache
def _case(name: str):
    return load_case(name)


@functools.cache
def _model(name: str) -> torch.nn.Module:
    case = _case(name)
    model_type = case.model_config["model_type"]
    if model_type in MODEL_TYPES:
        return load_model(case)
    model = _BUILDERS[model_type](ConfigNode(case.model_config, str(case.model_config_path)))
    state = case.state_dict()
    report = load_state_dict_checked(model, state, strict=True, what=name)
    assert report.ok and report.loaded == len(state), f"{name}: {report}"
    return model.eval()


@pytest.mark.parametrize("name", ["unet_adp_uncond", "diffusion_autoencoder", "adp_cfg_cond"])
def test_ckpt_holds_the_same_tensors(name: str):
    case = _case(name)
    safetensors_state, ckpt_state = case.state_dict(), case.ckpt_state_dict()
    assert safetensors_state.keys() == ckpt_state.keys()
    for key, value in safetensors_state.items():
        assert torch.equal(value, ckpt_state[key]), key


def test_unet_adp_uncond_forward():
    case = _case("unet_adp_uncond")
    model = _model("unet_adp_uncond")
    assert isinstance(model, DiffusionModelWrapper)
    with torch.no_grad():
        out = model(case.inputs["x"], case.inputs["t"])
    case.assert_close("forward.out", out)


@functools.cache
def _adp_cfg_outputs() -> dict[str, torch.Tensor]:
    """What case.json -> calls lists: conditioner, get_conditioning_inputs, then ``model.model`` calls."""
    case, model = _case("adp_cfg_cond"), _model("adp_cfg_cond")
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        cond = model.conditioner(case.params["metadata"], "cpu")
        for cond_id, (embedding, mask) in cond.items():
            out[f"cond.{cond_id}.embedding"], out[f"cond.{cond_id}.mask"] = embedding, mask.float()
        inputs = model.get_conditioning_inputs(cond)
        for key in ("cross_attn_cond", "cross_attn_mask", "global_cond"):
            out[f"cond_inputs.{key}"] = inputs[key].float()
        for call, kwargs in case.params["forward_calls"].items():
            out[f"forward.{call}"] = model.model(case.inputs["x"], case.inputs["t"],
                                                 cross_attn_cond=inputs["cross_attn_cond"],
                                                 cross_attn_mask=inputs["cross_attn_mask"],
                                                 global_cond=inputs["global_cond"], **kwargs)
    return out


@pytest.mark.parametrize("output", sorted(load_case("adp_cfg_cond").outputs))
def test_adp_cfg_cond_outputs(output: str):
    computed = _adp_cfg_outputs()
    assert output in computed, f"{output} was not produced (have: {sorted(computed)})"
    _case("adp_cfg_cond").assert_close(output, computed[output])


def test_adp_cfg_wrapper_call_works_and_uses_the_learned_null_condition():
    """``model(x, t, cond, ...)`` (broken in 0.0.20) equals the backbone call; the unconditional half uses
    ``fixed_embedding``, so changing it changes guided outputs but not unguided ones."""
    case, model = _case("adp_cfg_cond"), _model("adp_cfg_cond")
    x, t = case.inputs["x"], case.inputs["t"]
    with torch.no_grad():
        cond = model.conditioner(case.params["metadata"], "cpu")
        case.assert_close("forward.cfg3_batch", model(x, t, cond, cfg_scale=3.0, batch_cfg=True))
        null = model.model.model.fixed_embedding.embedding.weight
        saved = null.clone()
        try:
            null.add_(torch.randn(null.shape, generator=torch.Generator().manual_seed(0)))  # not constant: LayerNorm
            case.assert_close("forward.cfg1", model(x, t, cond, cfg_scale=1.0))
            guided = model(x, t, cond, cfg_scale=3.0, batch_cfg=True)
        finally:
            null.copy_(saved)
    assert (guided - case.outputs["forward.cfg3_batch"]).abs().max() > 1e-3


@functools.cache
def _autoencoder_outputs() -> dict[str, torch.Tensor]:
    case = _case("diffusion_autoencoder")
    model = _model("diffusion_autoencoder")
    assert isinstance(model, DiffusionAutoencoder)
    with torch.no_grad():
        latents = model.encode(case.inputs["audio"])
        cond = F.interpolate(latents, size=case.inputs["x"].shape[-1], mode="nearest")
        forward = model.diffusion(case.inputs["x"], case.inputs["t"], input_concat_cond=cond)
        decoded = model.decode(latents, steps=case.params["decode_steps"], noise=case.inputs["decode_noise"])
    return {"encode.latents": latents, "diffusion.input_concat_cond": cond, "diffusion.forward": forward,
            "decode.audio": decoded}


@pytest.mark.parametrize("output", ["encode.latents", "diffusion.input_concat_cond", "diffusion.forward",
                                    "decode.audio"])
def test_diffusion_autoencoder_outputs(output: str):
    _case("diffusion_autoencoder").assert_close(output, _autoencoder_outputs()[output])


def test_diffusion_autoencoder_conditioning_matches_decode_path():
    """decode() builds its U-Net conditioning exactly as the recorded input_concat_cond."""
    case = _case("diffusion_autoencoder")
    model = _model("diffusion_autoencoder")
    with torch.no_grad():
        cond = model.diffusion_conditioning(model.encode(case.inputs["audio"]))
    case.assert_close("diffusion.input_concat_cond", cond)


def test_diffusion_autoencoder_seeded_decode_draws_the_recorded_noise():
    case = _case("diffusion_autoencoder")
    model = _model("diffusion_autoencoder")
    latents = _autoencoder_outputs()["encode.latents"]
    generator = torch.Generator().manual_seed(case.params["decode_seed"])
    decoded = model.decode(latents, steps=case.params["decode_steps"], generator=generator)
    case.assert_close("decode.audio", decoded)
