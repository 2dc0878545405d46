"""Parity with stable-audio-tools 0.0.20 for the quantizing bottlenecks (rvq, dac_rvq, dac_rvq_vae, fsq,
dithered_fsq) on the small Oobleck autoencoder.

Outputs are recomputed as each case.json's "calls" say; the ``info`` entries come from
``params.info_outputs`` (info key -> output name). Token outputs are compared exactly, everything else
with the case's tolerance. ``tokens.*`` use our working ``decode_tokens`` (0.0.20's raises for rvq/fsq/
dithered_fsq; the fixture records what a working one returns).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from tests.parity.harness import cached_case, cached_model, outputs_of

CASES = ("ae_rvq", "ae_dac_rvq", "ae_dac_rvq_vae", "ae_fsq", "ae_dithered_fsq")
TOKEN_INFO_KEYS = ("quantizer_indices", "codes")


_case, _model = cached_case, cached_model


def _is_token_output(name: str, output: str) -> bool:
    info_outputs = _case(name).params["info_outputs"]
    token_names = {info_outputs[k] for k in TOKEN_INFO_KEYS if k in info_outputs}
    return output in token_names or output.endswith((".codes", ".quantizer_indices"))


def _train_step_outputs(model, encoder_out: torch.Tensor) -> dict[str, torch.Tensor]:
    """One training-mode call of a copy of the rvq bottleneck (EMA codebook update), as ae_rvq records."""
    bottleneck = copy.deepcopy(model.bottleneck).train()
    latents, info = bottleneck.encode(encoder_out, return_info=True)
    out = {"train.latents": latents, "train.quantizer_indices": info["quantizer_indices"],
           "train.quantizer_loss": info["quantizer_loss"].reshape(1)}
    for key, value in bottleneck.state_dict(prefix="bottleneck.").items():
        out[f"train.state.{key}"] = value
    return out


@functools.cache
def _computed(name: str) -> dict[str, torch.Tensor]:
    case, model = _case(name), _model(name)
    audio, latents, tokens = case.inputs["audio"], case.inputs["latents"], case.inputs["tokens"]
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        encoder_out = model.encoder(audio)
        out["encoder_out"] = encoder_out
        kwargs = {"noise": case.inputs["vae_noise"]} if "vae_noise" in case.inputs else {}
        encoded, info = model.encode(audio, return_info=True, **kwargs)
        out["encode.latents"] = encoded
        for key, output in case.params["info_outputs"].items():
            value = info[key]
            out[output] = value.reshape(1) if value.dim() == 0 else value
        out["decode.reconstruction"] = model.decode(encoded)
        out["decode.from_latents"] = model.decode(latents)
        out["tokens.latents"] = model.bottleneck.decode_tokens(tokens)
        out["tokens.decoded"] = model.decode_tokens(tokens)
        if "n_quantizers" in case.params:
            n = case.params["n_quantizers"]
            z, n_info = model.bottleneck.encode(encoder_out, return_info=True, n_quantizers=n)
            out[f"encode_n{n}.latents"], out[f"encode_n{n}.codes"] = z, n_info["codes"]
    if case.params.get("train_forward"):
        out.update(_train_step_outputs(model, encoder_out))
    return out


OUTPUTS = outputs_of(CASES)


@pytest.mark.parametrize(("name", "output"), OUTPUTS, ids=[f"{n}:{o}" for n, o in OUTPUTS])
def test_output_matches_reference(name: str, output: str) -> None:
    computed = _computed(name)
    assert output in computed, f"{name}: output {output!r} is recorded but not computed by this test"
    case = _case(name)
    if _is_token_output(name, output):
        actual = computed[output]
        assert not actual.is_floating_point(), f"{name}/{output}: tokens must be integers, got {actual.dtype}"
        assert torch.equal(actual.to(torch.float32), case.outputs[output]), f"{name}/{output}: tokens differ"
    else:
        case.assert_close(output, computed[output])


@pytest.mark.parametrize("name", CASES)
def test_model_keys_are_exactly_upstream_keys(name: str) -> None:
    assert set(_model(name).state_dict()) == set(_case(name).state_dict())


@pytest.mark.parametrize("name", CASES)
def test_tokens_of_encode_decode_to_the_encoded_latents(name: str) -> None:
    """decode_tokens(encode's tokens) gives back encode's latents: tokens are a lossless code for them."""
    case, model = _case(name), _model(name)
    kwargs = {"noise": case.inputs["vae_noise"]} if "vae_noise" in case.inputs else {}
    with torch.no_grad():
        latents, info = model.encode(case.inputs["audio"], return_info=True, **kwargs)
        rebuilt = model.bottleneck.decode_tokens(info[model.bottleneck.tokens_id])
    torch.testing.assert_close(rebuilt, latents, atol=1e-5, rtol=1e-5)
