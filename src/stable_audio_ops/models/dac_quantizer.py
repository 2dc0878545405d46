"""DAC's residual vector quantizer (the ``dac_rvq`` / ``dac_rvq_vae`` bottlenecks' quantizer).

Same maths and parameter names as descript-audio-codec 1.0.0's ``ResidualVectorQuantize``:
``quantizers.<i>.{in_proj, out_proj}`` (weight-normed 1x1 convs, keys ``weight_g`` / ``weight_v`` /
``bias``) and ``quantizers.<i>.codebook.weight`` ``[codebook_size, codebook_dim]``.

Each stage projects the residual down to ``codebook_dim`` (factorised codes), picks the code with the
highest cosine similarity (both sides L2-normalised for the search only; the chosen row is used as
stored), projects it back up and subtracts it from the residual. The codebook is learned by gradient
(the codebook loss), not by EMA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.models.blocks import wn_conv1d


class DACVectorQuantizer(nn.Module):
    """One stage: ``[B, input_dim, T]`` -> (quantized ``[B, input_dim, T]``, per-item commitment and
    codebook losses ``[B]``, indices ``[B, T]``, projected latents ``[B, codebook_dim, T]``)."""

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.in_proj = wn_conv1d(input_dim, codebook_dim, kernel_size=1)
        self.out_proj = wn_conv1d(codebook_dim, input_dim, kernel_size=1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def nearest(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``[B, D, T]`` and indices ``[B, T]`` of the most cosine-similar codebook rows."""
        flat = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]))
        book = F.normalize(self.codebook.weight)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        indices = (-dist).max(1)[1].reshape(z_e.shape[0], -1)
        return self.lookup(indices), indices

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, T]`` -> codebook rows ``[B, codebook_dim, T]`` (before ``out_proj``)."""
        return F.embedding(indices, self.codebook.weight).transpose(1, 2)

    def forward(self, z: torch.Tensor):
        z_e = self.in_proj(z)
        z_q, indices = self.nearest(z_e)
        commitment = F.mse_loss(z_e, z_q.detach(), reduction="none").mean([1, 2])
        codebook = F.mse_loss(z_q, z_e.detach(), reduction="none").mean([1, 2])
        z_q = z_e + (z_q - z_e).detach()  # straight-through: forward value z_q, gradient to z_e
        return self.out_proj(z_q), commitment, codebook, indices, z_e


class DACResidualVQ(nn.Module):
    """``n_codebooks`` stages over the running residual; codes ``[B, Q, T]``.

    In eval mode the first ``n_quantizers`` stages run (all by default). In training mode every stage
    runs and, with ``quantizer_dropout`` p, the first ``p * B`` items of the batch keep only a random
    number of stages (their output and losses ignore the rest), as DAC trains for variable bitrates.
    """

    def __init__(self, input_dim: int = 512, n_codebooks: int = 9, codebook_size: int = 1024,
                 codebook_dim: int | list[int] = 8, quantizer_dropout: float = 0.0):
        super().__init__()
        dims = [codebook_dim] * n_codebooks if isinstance(codebook_dim, int) else list(codebook_dim)
        if len(dims) != n_codebooks:
            raise ValueError(f"codebook_dim lists {len(dims)} sizes for {n_codebooks} codebooks")
        self.n_codebooks = n_codebooks
        self.codebook_size = codebook_size
        self.quantizer_dropout = float(quantizer_dropout)
        self.quantizers = nn.ModuleList([DACVectorQuantizer(input_dim, codebook_size, d) for d in dims])

    def _stages_per_item(self, batch: int, n_quantizers: int | None, device: torch.device) -> torch.Tensor:
        if not self.training:
            count = self.n_codebooks if n_quantizers is None else n_quantizers
            return torch.full((batch,), count, device=device)
        stages = torch.full((batch,), self.n_codebooks + 1, device=device)
        n_dropout = int(batch * self.quantizer_dropout)
        if n_dropout:
            stages[:n_dropout] = torch.randint(1, self.n_codebooks + 1, (n_dropout,), device=device)
        return stages

    def forward(self, z: torch.Tensor, n_quantizers: int | None = None):
        """-> (z_q ``[B, D, T]``, codes ``[B, Q, T]``, projected latents ``[B, sum(codebook_dim), T]``,
        commitment loss, codebook loss) with the losses summed over the stages that ran."""
        stages = self._stages_per_item(z.shape[0], n_quantizers, z.device)
        z_q = torch.zeros_like(z)
        residual = z
        commitment = codebook = z.new_zeros(())
        codes, latents = [], []
        for i, quantizer in enumerate(self.quantizers):
            if not self.training and i >= stages[0]:
                break
            z_q_i, commitment_i, codebook_i, indices_i, z_e_i = quantizer(residual)
            keep = torch.full((z.shape[0],), i, device=z.device) < stages
            z_q = z_q + z_q_i * keep[:, None, None]
            residual = residual - z_q_i
            commitment = commitment + (commitment_i * keep).mean()
            codebook = codebook + (codebook_i * keep).mean()
            codes.append(indices_i)
            latents.append(z_e_i)
        if not codes:
            raise ValueError(f"n_quantizers must be at least 1, got {n_quantizers}")
        return z_q, torch.stack(codes, dim=1), torch.cat(latents, dim=1), commitment, codebook

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, Q, T]`` (Q <= n_codebooks: the first Q stages) -> z_q ``[B, input_dim, T]``."""
        if codes.shape[1] > self.n_codebooks:
            raise ValueError(f"codes have {codes.shape[1]} codebooks, the quantizer {self.n_codebooks}")
        codes = codes.long()
        z_q = 0
        for i in range(codes.shape[1]):
            quantizer = self.quantizers[i]
            z_q = z_q + quantizer.out_proj(quantizer.lookup(codes[:, i, :]))
        return z_q
