"""Weighted loss terms: totals, names, weight schedules and upstream-compatible state-dict keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from stable_audio_ops.training.losses import (
    AuralossLoss,
    L1Loss,
    MSELoss,
    MultiLoss,
    MultiResolutionSTFTLoss,
    ValueLoss,
)

WRAPPED = Path(__file__).resolve().parents[2] / "fixtures" / "parity" / "unwrap_autoencoder" / "wrapped.ckpt"


def _info() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    reals = torch.randn(2, 1, 512, generator=gen)
    return {
        "reals": reals,
        "decoded": reals + 0.1 * torch.randn(2, 1, 512, generator=gen),
        "kl": torch.tensor(3.0),
        "loss_adv": torch.tensor(0.5),
        "feature_matching_distance": torch.tensor(2.0),
    }


def test_multiloss_total_is_the_weighted_sum_and_names_are_reported():
    info = _info()
    losses = MultiLoss(
        [
            ValueLoss("kl", 0.5, "kl_loss"),
            L1Loss("reals", "decoded", 2.0, "l1_time_loss"),
            MSELoss("reals", "decoded", 3.0, "l2_time_loss"),
        ]
    )
    total, per_name = losses(info)
    l1 = (info["reals"] - info["decoded"]).abs().mean()
    mse = (info["reals"] - info["decoded"]).pow(2).mean()
    assert list(per_name) == ["kl_loss", "l1_time_loss", "l2_time_loss"] == losses.names
    assert per_name["kl_loss"].item() == pytest.approx(1.5)
    assert per_name["l1_time_loss"].item() == pytest.approx(2.0 * l1.item(), rel=1e-6)
    assert total.item() == pytest.approx(1.5 + 2.0 * l1.item() + 3.0 * mse.item(), rel=1e-6)


def test_terms_with_missing_inputs_are_skipped():
    total, per_name = MultiLoss([ValueLoss("kl", 1.0, "kl_loss"), ValueLoss("quantizer_loss", 1.0)])(
        {"kl": torch.tensor(2.0)}
    )
    assert list(per_name) == ["kl_loss"] and total.item() == 2.0
    empty_total, empty = MultiLoss([ValueLoss("absent", 1.0)])({})
    assert empty == {} and empty_total.item() == 0.0


def test_decay_multiplies_the_weight_at_every_evaluation():
    term = ValueLoss("kl", 1.0, "kl_loss", decay=0.5)
    info = {"kl": torch.tensor(1.0)}
    values = [term(info).item() for _ in range(3)]
    assert values == [0.5, 0.25, 0.125]
    assert term.weight.item() == 0.125


def test_without_decay_a_loaded_weight_is_reset_to_the_configured_one():
    term = ValueLoss("kl", 1e-4, "kl_loss")
    term.load_state_dict({"weight": torch.tensor(0.3)})
    assert term({"kl": torch.tensor(1.0)}).item() == pytest.approx(1e-4)
    assert term.weight.item() == pytest.approx(1e-4)


def test_masked_l1_only_counts_masked_positions():
    info = {
        "a": torch.tensor([[[1.0, 5.0]]]),
        "b": torch.zeros(1, 1, 2),
        "mask": torch.tensor([[True, False]]),
    }
    assert L1Loss("a", "b", mask_key="mask")(info).item() == 1.0
    assert MSELoss("a", "b", mask_key="mask")(info).item() == 1.0
    assert L1Loss("a", "b")(info).item() == 3.0


def test_auraloss_term_calls_the_module_with_target_first_like_upstream():
    class FirstMinusSecond(nn.Module):
        def forward(self, first, second):
            return (first - second).mean()

    info = {"reals": torch.ones(1, 1, 4), "decoded": torch.zeros(1, 1, 4)}
    term = AuralossLoss(FirstMinusSecond(), input_key="decoded", target_key="reals", name="x", weight=2.0)
    assert term(info).item() == 2.0


def test_duplicate_names_are_rejected():
    with pytest.raises(ValueError, match="kl_loss"):
        MultiLoss([ValueLoss("kl", 1.0, "kl_loss"), ValueLoss("kl", 2.0, "kl_loss")])


class _Wrapper(nn.Module):
    """Holds loss lists the way upstream's AutoencoderTrainingWrapper does (mono VAE + encodec disc)."""

    def __init__(self):
        super().__init__()
        mrstft = MultiResolutionSTFTLoss(
            sample_rate=16000,
            fft_sizes=[128, 64],
            hop_sizes=[32, 16],
            win_lengths=[128, 64],
            perceptual_weighting=True,
        )
        self.sdstft = mrstft
        self.losses_gen = MultiLoss(
            [
                ValueLoss("loss_adv", 0.1, "loss_adv"),
                ValueLoss("feature_matching_distance", 5.0, "feature_matching_loss"),
                AuralossLoss(mrstft, input_key="decoded", target_key="reals", name="mrstft_loss", weight=1.0),
                ValueLoss("kl", 1e-4, "kl_loss"),
            ]
        )
        self.losses_disc = MultiLoss([ValueLoss("loss_dis", 1.0, "discriminator_loss")])


def test_state_dict_keys_and_values_match_an_upstream_training_checkpoint():
    upstream = torch.load(WRAPPED, map_location="cpu", weights_only=True)["state_dict"]
    loss_part = {
        k: v for k, v in upstream.items() if k.startswith(("losses_gen.", "losses_disc.", "sdstft."))
    }
    wrapper = _Wrapper()
    assert sorted(wrapper.state_dict()) == sorted(loss_part)
    wrapper.load_state_dict(loss_part, strict=True)
    for key, value in loss_part.items():
        assert wrapper.state_dict()[key].shape == value.shape == ()
        assert wrapper.state_dict()[key].item() == pytest.approx(value.item())
    total, per_name = wrapper.losses_gen(_info())
    assert list(per_name) == ["loss_adv", "feature_matching_loss", "mrstft_loss", "kl_loss"]
    assert torch.isfinite(total)
