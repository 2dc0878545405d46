"""Parity case ``losses_stft``: our spectral losses against stable-audio-tools 0.0.20's auraloss copy."""

from __future__ import annotations

import json

import pytest
import torch

from stable_audio_ops.training.losses import MultiResolutionSTFTLoss, SumAndDifferenceSTFTLoss
from tests.parity.harness import load_case

CASE = load_case("losses_stft")
VARIANTS = sorted(CASE.params["spectral_configs"])


def _losses(variant: str):
    args = CASE.params["spectral_configs"][variant]
    sample_rate = CASE.params["sample_rate"]
    return (
        MultiResolutionSTFTLoss(sample_rate=sample_rate, **args).eval(),
        SumAndDifferenceSTFTLoss(sample_rate=sample_rate, **args).eval(),
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_multi_resolution_and_sum_difference_match_reference(variant):
    mrstft, sdstft = _losses(variant)
    mono_in, mono_tgt = CASE.inputs["mono.input"], CASE.inputs["mono.target"]
    stereo_in, stereo_tgt = CASE.inputs["stereo.input"], CASE.inputs["stereo.target"]
    with torch.no_grad():
        CASE.assert_close(f"{variant}.mrstft.mono", mrstft(mono_in, mono_tgt).reshape(1))
        CASE.assert_close(f"{variant}.mrstft.stereo", mrstft(stereo_in, stereo_tgt).reshape(1))
        CASE.assert_close(f"{variant}.sdstft.stereo", sdstft(stereo_in, stereo_tgt).reshape(1))
        per_resolution = torch.stack([loss(mono_in, mono_tgt) for loss in mrstft.stft_losses])
        CASE.assert_close(f"{variant}.stft_per_resolution.mono", per_resolution)


def test_training_style_loss_config_builds_the_reference_loss():
    """loss_config.json is written like a model config's loss_configs; building from it gives sa2_perceptual."""
    config = json.loads((CASE.root / "loss_config.json").read_text())
    spectral = config["loss_configs"]["spectral"]
    assert spectral["type"] == "mrstft"
    loss = MultiResolutionSTFTLoss(sample_rate=config["sample_rate"], **spectral["config"])
    with torch.no_grad():
        value = loss(CASE.inputs["mono.input"], CASE.inputs["mono.target"])
    CASE.assert_close("sa2_perceptual.mrstft.mono", value.reshape(1))


def test_every_reference_output_is_checked():
    checked = {
        f"{variant}.{what}"
        for variant in VARIANTS
        for what in ("mrstft.mono", "mrstft.stereo", "sdstft.stereo", "stft_per_resolution.mono")
    }
    assert checked == set(CASE.outputs)
