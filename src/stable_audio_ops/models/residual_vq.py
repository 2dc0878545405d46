"""Residual vector quantizer with EMA codebooks (the ``rvq`` / ``rvq_vae`` bottlenecks' quantizer).

Same maths and buffer names as vector-quantize-pytorch 1.14.41's ``ResidualVQ`` (which 0.0.20 pins),
so its checkpoints load strictly: ``layers.<i>._codebook.{initted, cluster_size, embed_avg, embed}``
(``initted`` shaped ``(1,)``), plus ``project_in`` / ``project_out`` Linear layers when ``codebook_dim``
differs from ``dim``. Only the Euclidean, single-head, EMA-updated variant that stable-audio-tools uses
is implemented; the other vector-quantize-pytorch options are refused by the config builder.

Codebook life cycle:

* **k-means init** — a codebook built with ``kmeans_init`` starts with ``initted = 0`` and runs
  k-means on its first forward, *in eval mode too* (as upstream; a loaded checkpoint has ``initted = 1``).
* **EMA** (training mode) — per code, the count and the sum of assigned vectors decay toward this
  batch's; the code is their Laplace-smoothed ratio.
* **dead codes** (training mode) — codes whose EMA count fell below ``threshold_ema_dead_code`` are
  replaced by random vectors of the batch.

Distributed training: upstream all-reduces the EMA statistics but (in the configuration 0.0.20 uses)
draws k-means seeds and replacement codes per rank, so ranks can drift apart. Here, under an initialised
``torch.distributed`` group with more than one rank, the EMA statistics are all-reduced as upstream and
every k-means init or code replacement is broadcast from rank 0, so all ranks hold the same codebooks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _sync_enabled(sync: bool | None) -> bool:
    if sync is not None:
        return sync
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sample_vectors(samples: torch.Tensor, num: int) -> torch.Tensor:
    """``num`` rows of ``samples [N, D]``: without replacement when there are enough, else with."""
    if samples.shape[0] >= num:
        index = torch.randperm(samples.shape[0], device=samples.device)[:num]
    else:
        index = torch.randint(0, samples.shape[0], (num,), device=samples.device)
    return samples[index]


def euclidean_distance(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``[N, D] x [K, D] -> [N, K]`` distances as ``sqrt(max(|x|^2 + |c|^2 - 2 x.c, 0))`` (upstream's
    expansion; the nearest code is the arg-max of its negation, the first index on ties)."""
    x2 = x.pow(2).sum(-1)
    c2 = codes.pow(2).sum(-1)
    xc = torch.einsum("i d, j d -> i j", x, codes) * -2
    return (x2[:, None] + c2[None, :] + xc).clamp(min=0).sqrt()


def kmeans(samples: torch.Tensor, num_clusters: int, num_iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on ``[N, D]`` seeded with random samples; returns (means ``[K, D]``, counts ``[K]``).

    A cluster that loses all its members keeps its previous mean.
    """
    means = sample_vectors(samples, num_clusters)
    counts = torch.zeros(num_clusters, dtype=torch.long, device=samples.device)
    for _ in range(num_iters):
        buckets = (-euclidean_distance(samples, means)).argmax(dim=-1)
        counts = torch.bincount(buckets, minlength=num_clusters)
        empty = counts == 0
        sums = torch.zeros_like(means).index_add_(0, buckets, samples)
        new_means = sums / counts.masked_fill(empty, 1)[:, None]
        means = torch.where(empty[:, None], means, new_means)
    return means, counts


class EMACodebook(nn.Module):
    """One codebook of ``codebook_size`` vectors updated by exponential moving averages (no gradients).

    Buffers carry a leading axis of 1 (upstream's "number of codebooks" axis) so state dicts match.
    """

    def __init__(self, dim: int, codebook_size: int, kmeans_init: bool = False, kmeans_iters: int = 10,
                 decay: float = 0.8, eps: float = 1e-5, threshold_ema_dead_code: float = 0,
                 reset_cluster_size: float | None = None, sync: bool | None = None):
        super().__init__()
        self.codebook_size = codebook_size
        self.kmeans_iters = kmeans_iters
        self.decay = decay
        self.eps = eps
        self.threshold_ema_dead_code = threshold_ema_dead_code
        self.reset_cluster_size = threshold_ema_dead_code if reset_cluster_size is None else reset_cluster_size
        self.sync = sync
        embed = torch.zeros(1, codebook_size, dim) if kmeans_init else nn.init.kaiming_uniform_(
            torch.empty(1, codebook_size, dim))
        self.register_buffer("initted", torch.tensor([float(not kmeans_init)]))
        self.register_buffer("cluster_size", torch.zeros(1, codebook_size))
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("embed", embed)

    # --- codebook maintenance ---------------------------------------------------------------------
    def _broadcast(self) -> None:
        """Make every rank hold rank 0's codebook (after a random init or replacement)."""
        if _sync_enabled(self.sync):
            for buffer in (self.embed, self.embed_avg, self.cluster_size, self.initted):
                dist.broadcast(buffer.data, src=0)

    def _all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        if _sync_enabled(self.sync):
            dist.all_reduce(tensor)
        return tensor

    @torch.no_grad()
    def init_from(self, flat: torch.Tensor) -> None:
        """k-means init from the vectors ``[N, D]`` of the first batch, unless already initialised."""
        if self.initted.item():
            return
        means, counts = kmeans(flat, self.codebook_size, self.kmeans_iters)
        self.embed.data.copy_(means[None])
        self.embed_avg.data.copy_((means * counts[:, None])[None])
        self.cluster_size.data.copy_(counts[None])
        self.initted.data.fill_(1.0)
        self._broadcast()

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, onehot: torch.Tensor) -> None:
        """Decay the per-code counts and vector sums toward this batch's, then refresh the codes."""
        batch_counts = self._all_reduce(onehot.sum(dim=0)[None])
        self.cluster_size.data.lerp_(batch_counts, 1 - self.decay)
        batch_sums = self._all_reduce(torch.einsum("h n d, h n c -> h c d", flat[None], onehot[None]).contiguous())
        self.embed_avg.data.lerp_(batch_sums, 1 - self.decay)
        total = self.cluster_size.sum(dim=-1, keepdim=True)
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embed.data.copy_(self.embed_avg / smoothed[..., None])

    @torch.no_grad()
    def replace_dead_codes(self, flat: torch.Tensor) -> None:
        """Re-seed codes whose EMA count is below the threshold with random batch vectors."""
        if self.threshold_ema_dead_code == 0:
            return
        dead = self.cluster_size[0] < self.threshold_ema_dead_code
        if not torch.any(dead):
            return
        sampled = sample_vectors(flat, int(dead.sum().item()))
        self.embed.data[0][dead] = sampled
        self.cluster_size.data[0][dead] = self.reset_cluster_size
        self.embed_avg.data[0][dead] = sampled * self.reset_cluster_size
        self._broadcast()

    # --- quantization -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, N, D]`` -> (nearest codes ``[B, N, D]`` in float32, indices ``[B, N]``).

        Always in float32, autocast off (upstream turns CUDA autocast off here): half-precision
        distances would pick other codes and corrupt the EMA sums.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._forward(x.float())

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(-1, x.shape[-1])
        self.init_from(flat)
        embed = self.embed[0].detach()
        indices = (-euclidean_distance(flat, embed)).argmax(dim=-1)
        quantize = F.embedding(indices, embed)
        if self.training:
            self.ema_update(flat, F.one_hot(indices, self.codebook_size).to(flat.dtype))
            self.replace_dead_codes(flat)
        return quantize.reshape(x.shape), indices.reshape(x.shape[:-1])


class VectorQuantizer(nn.Module):
    """One residual stage: nearest code, commitment loss and straight-through gradients in training."""

    def __init__(self, dim: int, codebook_size: int, commitment_weight: float = 1.0, **codebook_kwargs):
        super().__init__()
        self._codebook = EMACodebook(dim, codebook_size, **codebook_kwargs)
        self.commitment_weight = commitment_weight

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, N, D]`` -> (quantized, indices ``[B, N]``, loss ``[1]``: 0 in eval mode)."""
        quantize, indices = self._codebook(x)
        loss = torch.zeros(1, device=x.device)
        if self.training:
            if self.commitment_weight > 0:
                loss = loss + F.mse_loss(quantize.detach(), x) * self.commitment_weight
            quantize = x + (quantize - x).detach()
        return quantize, indices, loss


class ResidualVQ(nn.Module):
    """Each stage quantizes what the previous stages left over; the output is the sum of their codes.

    Input and output are channels-last ``[B, N, dim]``; indices ``[B, N, num_quantizers]``; losses
    ``[1, num_quantizers]``. With ``quantize_dropout`` training stops after a random stage (indices -1
    and loss 0 for the skipped ones), so the decoder learns to work from coarse codes.
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int, codebook_dim: int | None = None,
                 quantize_dropout: bool = False, quantize_dropout_cutoff_index: int = 0,
                 quantize_dropout_multiple_of: int = 1, **stage_kwargs):
        super().__init__()
        codebook_dim = dim if codebook_dim is None else codebook_dim
        projected = codebook_dim != dim
        self.project_in: nn.Module = nn.Linear(dim, codebook_dim) if projected else nn.Identity()
        self.project_out: nn.Module = nn.Linear(codebook_dim, dim) if projected else nn.Identity()
        self.num_quantizers = num_quantizers
        self.codebook_size = codebook_size
        self.layers = nn.ModuleList(
            [VectorQuantizer(codebook_dim, codebook_size, **stage_kwargs) for _ in range(num_quantizers)])
        self.quantize_dropout = quantize_dropout and num_quantizers > 1
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        self.quantize_dropout_multiple_of = quantize_dropout_multiple_of

    def _last_stage(self) -> int:
        """Index of the last stage to run (all of them unless quantizer dropout draws fewer)."""
        if not (self.training and self.quantize_dropout):
            return self.num_quantizers - 1
        last = int(torch.randint(self.quantize_dropout_cutoff_index, self.num_quantizers, ()).item())
        step = self.quantize_dropout_multiple_of
        if step != 1:
            last = -(-(last + 1) // step) * step - 1
        return last

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.project_in(x)
        residual, out = x, torch.zeros_like(x)
        last = self._last_stage()
        indices, losses = [], []
        for i, layer in enumerate(self.layers):
            if i > last:
                indices.append(torch.full(x.shape[:2], -1, dtype=torch.long, device=x.device))
                losses.append(torch.zeros(1, device=x.device, dtype=x.dtype))
                continue
            quantized, layer_indices, loss = layer(residual)
            residual = residual - quantized.detach()
            out = out + quantized
            indices.append(layer_indices)
            losses.append(loss)
        return self.project_out(out), torch.stack(indices, dim=-1), torch.stack(losses, dim=-1)

    @property
    def codebooks(self) -> torch.Tensor:
        """``[num_quantizers, codebook_size, codebook_dim]``."""
        return torch.stack([layer._codebook.embed[0] for layer in self.layers])

    def get_output_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, N, Q]`` (Q <= num_quantizers; -1 = dropped stage) -> ``[B, N, dim]``."""
        if indices.shape[-1] > self.num_quantizers:
            raise ValueError(f"tokens have {indices.shape[-1]} quantizers, the model {self.num_quantizers}")
        indices = indices.long()
        out = 0
        for q in range(indices.shape[-1]):
            index = indices[..., q]
            codes = F.embedding(index.clamp(min=0), self.codebooks[q])
            out = out + codes.masked_fill((index < 0)[..., None], 0.0)
        return self.project_out(out)
