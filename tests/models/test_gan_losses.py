"""GAN objectives: each rewards a critic that separates real from fake scores."""

from __future__ import annotations

import torch

from stable_audio_ops.models.gan_losses import hinge_losses, relativistic_losses


def test_hinge_and_relativistic_losses_reward_separation():
    real, fake = torch.full((4,), 2.0), torch.full((4,), -2.0)
    dis, adv = hinge_losses(real, fake)
    assert dis.item() == 0.0 and adv.item() == 2.0
    dis_swapped, adv_swapped = hinge_losses(fake, real)
    assert dis_swapped.item() == 6.0 and adv_swapped.item() == -2.0
    rp_dis, rp_adv = relativistic_losses(real, fake)
    rp_dis_swapped, _ = relativistic_losses(fake, real)
    assert rp_dis.item() < rp_dis_swapped.item() and rp_adv.item() > rp_dis.item()
