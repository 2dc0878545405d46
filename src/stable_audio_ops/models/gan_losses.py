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


def sigmoid_relativistic_losses(
    score_real: torch.Tensor, score_fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(discriminator loss, generator loss) of 0.0.20's ``sigmoid_rpgan``: a bounded relativistic pair.

    ``d = (fake - real) / 2``; the critic minimises ``2 sigmoid(d)``, the generator ``2 sigmoid(-d)``, so
    neither loss can run away once the critic separates the two (the two losses always sum to 2).
    """
    diff = 0.5 * (score_fake - score_real)
    return 2.0 * torch.sigmoid(diff).mean(), 2.0 * torch.sigmoid(-diff).mean()


# loss_type -> objective, as the hil and transformer discriminators of 0.0.20 name them
GAN_OBJECTIVES = {"hinge": hinge_losses, "rpgan": relativistic_losses, "sigmoid_rpgan": sigmoid_relativistic_losses}


def feature_distance(real: torch.Tensor, fake: torch.Tensor, normalize: bool) -> torch.Tensor:
    """Mean L1 between two feature maps; ``normalize`` divides by ``mean|real| + 1e-3`` (detached)."""
    distance = (real - fake).abs().mean()
    return distance / (real.abs().mean().detach() + 1e-3) if normalize else distance


def multi_critic_losses(
    logits_real: list[torch.Tensor],
    logits_fake: list[torch.Tensor],
    features_real: list[list[torch.Tensor]],
    features_fake: list[list[torch.Tensor]],
    loss_type: str,
    normalize_features: bool = False,
    finite_terms: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(discriminator, adversarial, feature matching) losses averaged over a list of critics.

    Each critic's feature-matching term is the mean of its layers' :func:`feature_distance`; NaN/inf in
    the summed feature term become 0 (0.0.20 does this so one degenerate map cannot poison a step), and
    with ``finite_terms`` each critic's GAN terms too (the transformer discriminator).
    """
    objective = GAN_OBJECTIVES[loss_type]
    dis_total = logits_real[0].new_zeros(())
    adv_total = logits_real[0].new_zeros(())
    fm_total = logits_real[0].new_zeros(())
    for real, fake, layers_real, layers_fake in zip(
        logits_real, logits_fake, features_real, features_fake, strict=True
    ):
        distances = [feature_distance(r, f, normalize_features) for r, f in zip(layers_real, layers_fake, strict=True)]
        fm_total = fm_total + sum(distances) / len(layers_real)
        dis, adv = objective(real, fake)
        if finite_terms:
            dis, adv = torch.nan_to_num(dis, nan=0.0, posinf=0.0), torch.nan_to_num(adv, nan=0.0, posinf=0.0)
        dis_total = dis_total + dis
        adv_total = adv_total + adv
    fm_total = torch.nan_to_num(fm_total, nan=0.0, posinf=0.0)
    critics = len(logits_real)
    return dis_total / critics, adv_total / critics, fm_total / critics
