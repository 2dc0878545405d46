"""Parity with stable-audio-tools 0.0.20 for the signal pretransforms (``pretransform_wavelet_patched``):
``wavelet`` (bior4.4 stereo 3 levels, bior2.2 mono 2 levels) and ``patched`` (plain, with postfilter,
with 2x oversampling): encode, decode of the encoding, decode of given latents, odd lengths.

Each pretransform is built from its config through our factory; all of them sit in one ModuleDict
(keys ``<name>.*``) that loads the case's state dict strictly, buffers included. The filter buffers
are derived from the config, so a freshly built module must already hold the saved values exactly.
"""

from __future__ import annotations

import functools
import json

import pytest
import torch

from stable_audio_ops.models.factory import create_pretransform_from_config
from tests.parity.harness import ParityCase, load_case

CASE = "pretransform_wavelet_patched"


@functools.cache
def _case() -> ParityCase:
    return load_case(CASE)


def _configs() -> dict:
    return json.loads((_case().root / "pretransform_config.json").read_text())


def _fresh() -> torch.nn.ModuleDict:
    configs = _configs()
    return torch.nn.ModuleDict({name: create_pretransform_from_config(cfg, configs["sample_rate"])
                                for name, cfg in configs["pretransforms"].items()})


@functools.cache
def _loaded() -> torch.nn.ModuleDict:
    modules = _fresh()
    result = modules.load_state_dict(_case().state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return modules.eval()


def test_state_dict_keys_equal_and_ckpt_matches_safetensors() -> None:
    state, ckpt = _case().state_dict(), _case().ckpt_state_dict()
    assert state.keys() == ckpt.keys() == _fresh().state_dict().keys()
    for key, value in state.items():
        assert torch.equal(value, ckpt[key]), key


def test_fresh_filter_buffers_equal_the_saved_ones() -> None:
    """Wavelet filters (PyWavelets) and resampling kernels are rebuilt bit for bit from the config."""
    saved, fresh = _case().state_dict(), _fresh().state_dict()
    buffers = [k for k in saved if k.endswith(".kernel")]
    assert len(buffers) == 6
    for key in buffers:
        assert torch.equal(fresh[key], saved[key]), key


@functools.cache
def _computed() -> dict[str, torch.Tensor]:
    case, modules = _case(), _loaded()
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in case.params["order"]:
            pretransform = modules[name]
            out[f"{name}.encode"] = pretransform.encode(case.inputs[f"{name}.audio"])
            out[f"{name}.decode_of_encode"] = pretransform.decode(out[f"{name}.encode"])
            out[f"{name}.decode"] = pretransform.decode(case.inputs[f"{name}.latents"])
            if f"{name}.audio_odd" in case.inputs:
                out[f"{name}.encode_odd"] = pretransform.encode(case.inputs[f"{name}.audio_odd"])
                out[f"{name}.decode_of_encode_odd"] = pretransform.decode(out[f"{name}.encode_odd"])
    return out


@pytest.mark.parametrize("output", sorted(load_case(CASE).outputs))
def test_pretransform_output(output: str) -> None:
    computed = _computed()
    assert output in computed, f"{output} was not produced (have: {sorted(computed)})"
    _case().assert_close(output, computed[output])
