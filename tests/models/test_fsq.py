"""Finite scalar quantizers: every index maps to one code and back, levels are evenly spaced and
bounded, training-mode dithering stays within one quantization step."""

from __future__ import annotations

import torch

from stable_audio_ops.models.fsq import FSQ, DitheredFSQ


def test_fsq_indices_and_codes_are_a_bijection_over_the_whole_codebook() -> None:
    fsq = FSQ([8, 5, 3])
    assert fsq.codebook_size == 120
    indices = torch.arange(120).reshape(1, 120, 1)
    codes = fsq.indices_to_codes(indices)
    assert codes.shape == (1, 120, 3)
    assert torch.equal(fsq.codes_to_indices(codes.unflatten(-1, (1, 3))).long(), indices)
    assert len({tuple(c.tolist()) for c in codes[0]}) == 120
    assert codes.abs().max() <= 1.0


def test_fsq_forward_rounds_to_levels_and_reports_their_index() -> None:
    fsq = FSQ([5, 4], num_codebooks=2)
    z = torch.randn(3, 7, 4) * 3
    codes, indices = fsq(z)
    assert indices.shape == (3, 7, 2) and indices.dtype == torch.int32
    torch.testing.assert_close(fsq.indices_to_codes(indices), codes)
    # an odd level count has 0 among its levels; an even one is symmetric around 0 without it
    assert set(torch.unique(codes[..., 0] * 2).tolist()) <= {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert set(torch.unique(codes[..., 1] * 2).tolist()) <= {-2.0, -1.0, 0.0, 1.0}


def test_fsq_projects_when_dim_differs_and_passes_gradients_straight_through() -> None:
    fsq = FSQ([3, 3], dim=5)
    assert {"project_in.weight", "project_out.bias"} <= set(fsq.state_dict())
    z = torch.randn(2, 4, 5, requires_grad=True)
    codes, _ = fsq(z)
    assert codes.shape == (2, 4, 5)
    codes.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_dithered_fsq_eval_is_deterministic_rounding_of_tanh() -> None:
    q = DitheredFSQ([5, 4]).eval()
    z = torch.randn(2, 6, 2)
    codes, indices = q(z)
    step = torch.tensor([2 / 4, 2 / 3])
    levels = (torch.tanh(z) + 1) / step
    torch.testing.assert_close(codes, levels.round() * step - 1)
    torch.testing.assert_close(q.indices_to_codes(indices), codes)
    assert torch.equal(q(z)[0], codes)


def test_dithered_fsq_training_mixes_items_but_stays_within_one_step() -> None:
    torch.manual_seed(0)
    q = DitheredFSQ([5], noise_dropout=0.3).train()
    z = torch.randn(64, 10, 1)
    codes, _ = q(z)
    assert (codes - torch.tanh(z)).abs().max() <= 0.5 / 2 * 2 + 1e-6  # half a step of 0.5, or rounding
    rounded = q.eval()(z)[0]
    per_item_rounded = torch.all(codes == rounded, dim=(1, 2))
    assert 0 < int(per_item_rounded.sum()) < 64  # some items rounded, others dithered or left as is


def test_quantizers_ignore_bf16_autocast() -> None:
    torch.manual_seed(0)
    fsq, dithered = FSQ([8, 5, 5, 5], dim=6).eval(), DitheredFSQ([7, 5, 5, 4]).eval()
    z6, z4 = torch.randn(2, 50, 6) * 2, torch.randn(2, 50, 4) * 2
    expected = fsq(z6), dithered(z4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fsq(z6), dithered(z4)
    for (codes, indices), (want_codes, want_indices) in zip(got, expected, strict=True):
        assert torch.equal(indices, want_indices) and codes.dtype == torch.float32
        torch.testing.assert_close(codes, want_codes)
