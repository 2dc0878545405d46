"""DAC residual VQ: cosine nearest code, per-stage losses, n_quantizers, quantizer dropout, from_codes."""

from __future__ import annotations

import torch

from stable_audio_ops.models.dac_quantizer import DACResidualVQ, DACVectorQuantizer


def test_stage_picks_the_most_cosine_similar_code_and_uses_it_unnormalised() -> None:
    stage = DACVectorQuantizer(input_dim=2, codebook_size=3, codebook_dim=2)
    stage.codebook.weight.data = torch.tensor([[10.0, 0.0], [0.0, 0.1], [-1.0, -1.0]])
    z_e = torch.tensor([[[0.5, -3.0], [0.1, -2.0]]])  # frames (0.5, 0.1) and (-3, -2)
    z_q, indices = stage.nearest(z_e)
    assert indices.tolist() == [[0, 2]]
    assert torch.equal(z_q, torch.tensor([[[10.0, -1.0], [0.0, -1.0]]]))


def test_eval_uses_n_quantizers_and_from_codes_rebuilds_z() -> None:
    torch.manual_seed(0)
    rvq = DACResidualVQ(input_dim=6, n_codebooks=3, codebook_size=8, codebook_dim=2).eval()
    z = torch.randn(2, 6, 5)
    with torch.no_grad():
        z_q, codes, latents, commitment, codebook = rvq(z)
        assert codes.shape == (2, 3, 5) and latents.shape == (2, 6, 5)
        torch.testing.assert_close(commitment, codebook)
        torch.testing.assert_close(rvq.from_codes(codes), z_q, atol=1e-5, rtol=1e-5)
        z2, codes2, _, _, _ = rvq(z, n_quantizers=2)
        assert torch.equal(codes2, codes[:, :2])
        torch.testing.assert_close(rvq.from_codes(codes2), z2, atol=1e-5, rtol=1e-5)


def test_training_dropout_keeps_a_prefix_of_stages_for_the_first_items() -> None:
    torch.manual_seed(0)
    rvq = DACResidualVQ(input_dim=4, n_codebooks=4, codebook_size=8, codebook_dim=2, quantizer_dropout=0.5).train()
    z = torch.randn(4, 4, 3)
    z_q, codes, *_ = rvq(z)
    assert codes.shape == (4, 4, 3)  # every stage runs in training
    full = rvq.from_codes(codes)
    torch.testing.assert_close(z_q[2:], full[2:], atol=1e-5, rtol=1e-5)  # last half: all stages
    for item in range(2):  # first half: some prefix of the stages
        prefixes = [rvq.from_codes(codes[item : item + 1, :k]) for k in range(1, 5)]
        assert any(torch.allclose(z_q[item : item + 1], p, atol=1e-5) for p in prefixes)


def test_straight_through_gradients_reach_the_input_and_the_codebook() -> None:
    rvq = DACResidualVQ(input_dim=4, n_codebooks=2, codebook_size=4, codebook_dim=2).train()
    z = torch.randn(2, 4, 3, requires_grad=True)
    z_q, _, _, commitment, codebook = rvq(z)
    (z_q.sum() + commitment + codebook).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert rvq.quantizers[0].codebook.weight.grad.abs().sum() > 0
