"""The loss terms and retrieval metrics of 0.0.20's CLAP training, as plain functions of embeddings.

Why separate: the Lightning module (:mod:`stable_audio_ops.training.clap`), the demo callback and tests use the
same maths. All inputs are L2-normalised ``[B, D]`` audio / text embeddings whose row ``i`` belong together.

- :func:`info_nce`: cross-entropy of ``scale * q @ k.T`` against the diagonal, averaged over rows: what 0.0.20
  gets from ``inf_cl.cal_inf_loss(q, k, scale=t)`` (a memory-saving kernel for the same value); the contrastive
  term is ``(info_nce(a, t) + info_nce(t, a)) / 2`` with ``scale = exp(logit_scale_a)``, gradients reaching the
  temperature too;
- :func:`uniformity`: ``log mean exp(-2 ||x_i - x_j||^2)`` over the pairs ``i < j`` of one modality;
- :func:`cross_uniformity`: the same over all audio-text pairs (matching pairs included, as upstream);
- :func:`alignment`: ``mean(1 - cos(a_i, t_i))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# 0.0.20's CLAPTrainingWrapper defaults (training.loss_config overrides any of them)
DEFAULT_LOSS_WEIGHTS = {"contrastive": 1.0, "uniformity": 0.1, "cross_uniformity": 0.1, "alignment": 0.1}


def info_nce(q: torch.Tensor, k: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Mean cross-entropy of ``scale * q @ k.T`` with row ``i``'s positive at column ``i``."""
    logits = scale * q @ k.T
    return F.cross_entropy(logits.float(), torch.arange(q.shape[0], device=q.device))


def contrastive_loss(audio: torch.Tensor, text: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE: audio->text and text->audio averaged."""
    return (info_nce(audio, text, scale) + info_nce(text, audio, scale)) / 2


def uniformity(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


def cross_uniformity(x: torch.Tensor, y: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    return torch.cdist(x, y, p=2).pow(2).mul(-t).exp().mean().log()


def alignment(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(x, y, dim=-1)).mean()


def retrieval_metrics(audio: torch.Tensor, text: torch.Tensor, scale: torch.Tensor | float = 1.0
                      ) -> dict[str, float]:
    """0.0.20's validation metrics: the symmetric cross-entropy (``cumulative_loss``), ``num_samples`` and, for
    ``audio_to_text`` and ``text_to_audio``, the mean and median rank of the right item (1 = first), recall
    ``R@1/5/10`` and ``mAP@10``."""
    audio, text = audio.detach().float().cpu(), text.detach().float().cpu()
    scale = float(scale)
    per_audio = scale * audio @ text.T
    labels = torch.arange(audio.shape[0])
    loss = (F.cross_entropy(per_audio, labels) + F.cross_entropy(per_audio.T, labels)) / 2
    metrics: dict[str, float] = {"cumulative_loss": float(loss), "num_samples": float(audio.shape[0])}
    for name, logits in (("audio_to_text", per_audio), ("text_to_audio", per_audio.T)):
        # rank of the matching item = how many others score higher; ties count against it (collapsed
        # embeddings must not look perfect)
        right = logits.diagonal()[:, None]
        ranks = ((logits > right).sum(dim=1) + (logits == right).sum(dim=1) - 1).float()
        metrics[f"{name}_mean_rank"] = float(ranks.mean()) + 1
        metrics[f"{name}_median_rank"] = float(torch.quantile(ranks, 0.5).floor()) + 1
        for k in (1, 5, 10):
            metrics[f"{name}_R@{k}"] = float((ranks < k).float().mean())
        metrics[f"{name}_mAP@10"] = float(torch.where(ranks < 10, 1 / (ranks + 1), torch.zeros_like(ranks)).mean())
    return metrics


__all__ = ["DEFAULT_LOSS_WEIGHTS", "alignment", "contrastive_loss", "cross_uniformity", "info_nce",
           "retrieval_metrics", "uniformity"]
