"""Parity with stable-audio-tools 0.0.20 for ``diffusion_uncond`` with the ``dit`` backbone
(``diffusion_uncond_dit``): ``model(x, t)`` at mixed and equal timesteps, strict key equality.

The ``adp_uncond_1d`` backbone's case (``unet_adp_uncond``) is in test_unet_cases.py.
"""

from __future__ import annotations

import functools

import pytest
import torch

from stable_audio_ops.models.diffusion_uncond import DiffusionModelWrapper, DiTUncondWrapper
from tests.parity.harness import load_case, load_model

CASE = "diffusion_uncond_dit"


@functools.cache
def _model() -> DiffusionModelWrapper:
    return load_model(load_case(CASE))


def test_checkpoint_keys_equal_and_ckpt_matches_safetensors() -> None:
    case = load_case(CASE)
    safetensors_state, ckpt_state = case.state_dict(), case.ckpt_state_dict()
    assert safetensors_state.keys() == ckpt_state.keys() == _model().state_dict().keys()
    for key, value in safetensors_state.items():
        assert torch.equal(value, ckpt_state[key]), key


@pytest.mark.parametrize("t_set", ["mixed", "same"])
def test_dit_uncond_forward(t_set: str) -> None:
    case, model = load_case(CASE), _model()
    assert isinstance(model.model, DiTUncondWrapper) and model.diffusion_objective == "v"
    with torch.no_grad():
        out = model(case.inputs["x"], case.inputs[f"t.{t_set}"])
    case.assert_close(f"forward.{t_set}", out)
