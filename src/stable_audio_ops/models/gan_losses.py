"""GAN objectives on critic scores, shared by the discriminators (kept apart so they import no critic)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_losses(score_real: torch.Tensor, score_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(discriminator loss, generator loss) of the hinge GAN objective."""
    dis_loss = torch.relu(1 - score_real).mean() + torch.relu(1 + score_fake).mean()
    return dis_loss, -score_fake.mean()


def relativistic_losses(
    score_real: torch.Tensor, score_fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(discriminator loss, generator loss) of the relativistic pairing GAN (RpGAN) objective.

    Upstream's GitHub code names this branch but never defines the function (NameError); 0.0.20's
    successor defines it as softplus of the real-minus-fake score difference, which is what we use.
    """
    diff = score_real - score_fake
    return F.softplus(-diff).mean(), F.softplus(diff).mean()
