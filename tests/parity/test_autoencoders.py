"""Parity with stable-audio-tools 0.0.20 for the continuous autoencoders: Oobleck with the vae, tanh,
l2_norm and wasserstein bottlenecks, the DAC encoder/decoder with vae, and SEANet without a bottleneck.

Each case is built from its model_config.json with our factory, loaded strictly with our checker,
and every recorded output is recomputed the way case.json's "calls" describe. One test per output,
so a failure names the output that diverged.
"""

from __future__ import annotations

import functools

import pytest
import torch

from stable_audio_ops.models.checkpoints import load_ckpt_state_dict
from tests.parity.harness import cached_case, cached_model, outputs_of

CASES = ("ae_oobleck_vae", "ae_oobleck_tanh", "ae_oobleck_l2norm", "ae_dac_encoder", "ae_seanet", "ae_wasserstein")
VAE_CASES = ("ae_oobleck_vae", "ae_dac_encoder")


_case, _model = cached_case, cached_model


def _decode(name: str, latents: torch.Tensor) -> torch.Tensor:
    """``model.decode``; with the wasserstein bottleneck's noise channels pinned to ``decode_noise``."""
    case, model = _case(name), _model(name)
    if "decode_noise" not in case.inputs:
        return model.decode(latents)
    return model.decoder(model.bottleneck.decode(latents, noise=case.inputs["decode_noise"]))


@functools.cache
def _computed(name: str) -> dict[str, torch.Tensor]:
    """All outputs of one case, computed as case.json -> calls says (eval, no_grad)."""
    case, model = _case(name), _model(name)
    audio, latents = case.inputs["audio"], case.inputs["latents"]
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        encoder_out = model.encoder(audio)
        out["encoder_out"] = encoder_out
        if name in VAE_CASES:
            mean, scale = encoder_out.chunk(2, dim=1)
            out["vae.mean"], out["vae.scale"] = mean, scale
            out["vae.stdev"] = torch.nn.functional.softplus(scale) + 1e-4
            _, info = model.bottleneck.encode(encoder_out, return_info=True)
            out["vae.kl"] = info["kl"].reshape(1)
            out["encode.latents_sampled"] = model.encode(audio, noise=case.inputs["vae_noise"])
            out["decode.from_latents"] = model.decode(latents)
            out["decode.from_mean"] = model.decode(mean)
        else:
            encoded = model.encode(audio)
            out["encode.latents"] = encoded
            out["decode.reconstruction"] = _decode(name, encoded)
            out["decode.from_latents"] = _decode(name, latents)
    return out


OUTPUTS = outputs_of(CASES)


@pytest.mark.parametrize(("name", "output"), OUTPUTS, ids=[f"{n}:{o}" for n, o in OUTPUTS])
def test_output_matches_reference(name: str, output: str) -> None:
    computed = _computed(name)
    assert output in computed, f"{name}: output {output!r} is recorded but not computed by this test"
    _case(name).assert_close(output, computed[output])


@pytest.mark.parametrize("name", CASES)
def test_ckpt_and_safetensors_hold_identical_tensors(name: str) -> None:
    case = _case(name)
    from_safetensors = load_ckpt_state_dict(case.root / "model.safetensors")
    from_ckpt = load_ckpt_state_dict(case.root / "model.ckpt")
    assert from_safetensors.keys() == from_ckpt.keys()
    for key, tensor in from_safetensors.items():
        assert torch.equal(tensor, from_ckpt[key]), key


@pytest.mark.parametrize("name", CASES)
def test_model_keys_are_exactly_upstream_keys(name: str) -> None:
    assert set(_model(name).state_dict()) == set(_case(name).state_dict())


def test_encode_with_return_info_exposes_kl_and_pre_bottleneck_latents() -> None:
    case, model = _case("ae_oobleck_vae"), _model("ae_oobleck_vae")
    with torch.no_grad():
        latents, info = model.encode(case.inputs["audio"], return_info=True, noise=case.inputs["vae_noise"])
    case.assert_close("encode.latents_sampled", latents)
    case.assert_close("encoder_out", info["pre_bottleneck_latents"])
    case.assert_close("vae.kl", info["kl"].reshape(1))
