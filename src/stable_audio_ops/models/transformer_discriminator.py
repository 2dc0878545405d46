"""The ``transformer`` discriminator of stable-audio-tools 0.0.20 (``MultiTransformerDiscriminator``).

A set of critics, each a fixed front end (a "pretransform" that turns audio into frames) followed by a
:class:`~.resampling_transformer.TransformerResamplingBlock` that downsamples the frames by ``stride``
with sliding-window attention, and a 1x1 conv (``decision_map``, no bias) that gives one logit per output
frame. The transformer width is :func:`transformer_dim` of the front end's channels. Feature maps for
feature matching are the first ``max_depth_feature`` (2) of: the mapped input, then each layer's output.

Critic families, each switched on by its ``*_kwargs`` block (``enabled``), with upstream's defaults:

- ``patched_kwargs`` (on by default): audio folded into patches of ``patch_sizes`` [29, 443, 953] samples
  (``patched_discriminators``);
- ``stft_kwargs``: 0.0.20's tight complex STFT (sine window, hop ``n_fft / 2``, unitary, parity
  demodulated, one-sided bins weighted sqrt 2) at ``n_ffts`` [4096, 1024, 128] (``stft_discriminators``);
- ``mfb_kwargs``: wavelet front ends at ``levels`` [4, 8, 10], or with ``use_HIL`` the convolutional
  PQMF filter-bank critics of the ``hil`` type (``fb_discriminators``).

Each family also takes ``depths``, ``strides`` and ``sliding_window_widths`` per critic and the options
of the critic (``checkpointing``, ``differential``, ``max_depth_feature``, ``ff_mult``, ``dyt``,
``conformer``, ``layer_scale``, ``feat_scale``, ``sinusoidal_blocks``, ``mapping_bias``,
``conv_mapping``). Losses: ``loss_type`` ``rpgan`` (default), ``hinge`` or ``sigmoid_rpgan``, averaged
over all critics, with each critic's terms made finite. While the running discriminator loss (EMA 0.99
of the per-critic mean) is below 0.1, both inputs get Gaussian noise of ``10 (0.1 - loss)`` times their
std: upstream's guard against a critic that has won.

Differences from 0.0.20: ``chroma_kwargs.enabled`` and ``add_noise`` are refused (they need torchaudio's
prototype chroma transform and a psychoacoustic noise model that this package does not have); options
0.0.20 silently ignores are errors naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.models.gan_losses import GAN_OBJECTIVES, multi_critic_losses
from stable_audio_ops.models.pretransforms import PatchedPretransform, WaveletPretransform
from stable_audio_ops.models.resampling_transformer import TransformerResamplingBlock

CRITIC_OPTIONS = ("checkpointing", "differential", "max_depth_feature", "ff_mult", "dyt", "conformer", "layer_scale",
                  "feat_scale", "sinusoidal_blocks", "mapping_bias", "conv_mapping", "chunk_size")
FAMILY_DEFAULTS = {
    "stft": {"n_ffts": [4096, 1024, 128], "depths": [3, 3, 3], "strides": [2, 32, 2],
             "sliding_window_widths": [2, 4, 3]},
    "patched": {"patch_sizes": [29, 443, 953], "depths": [3, 3, 3], "strides": [2, 16, 2],
                "sliding_window_widths": [4, 8, 1]},
    "mfb": {"levels": [4, 8, 10], "depths": [3, 3, 3], "strides": [2, 32, 2], "sliding_window_widths": [3, 8, 1]},
}


def transformer_dim(channels: int, k: float = 16.0, min_dim: int = 192, max_dim: int = 512, head_dim: int = 64) -> int:
    """Width for a critic over ``channels`` input channels: ``k sqrt(channels)`` rounded to whole heads and
    clamped to [min_dim, max_dim] (0.0.20's ``get_transformer_dim``)."""
    heads = int(math.floor(k * math.sqrt(max(1.0, float(channels))) / head_dim + 0.5))
    heads = max(math.ceil(min_dim / head_dim), min(math.floor(max_dim / head_dim), heads))
    return heads * head_dim


class TightComplexSTFT(nn.Module):
    """0.0.20's ``ComplexSTFTPretransform`` as the critics use it (demodulated, no flattening or compander).

    ``encode``: ``[b, c, t] -> [b, 2 c (n_fft/2 + 1), frames]``, real and imaginary parts interleaved per bin.
    ``psd`` and ``s2a`` are the (unused here) statistics buffers upstream checkpoints carry.
    """

    def __init__(self, channels: int, n_fft: int):
        super().__init__()
        if n_fft < 2 or n_fft % 2:
            raise ValueError(f"n_fft must be an even number >= 2, got {n_fft}")
        self.channels = channels
        self.n_fft = n_fft
        self.bins = n_fft // 2 + 1
        self.downsampling_ratio = n_fft // 2
        self.encoded_channels = channels * 2 * self.bins
        n = torch.arange(n_fft, dtype=torch.float32)
        self.register_buffer("window", torch.sin(math.pi * (n + 0.5) / n_fft), persistent=False)
        weights = torch.full((self.bins,), math.sqrt(2.0))
        weights[0] = weights[-1] = 1.0  # DC and Nyquist appear once in a one-sided spectrum
        self.register_buffer("bin_weights", weights.view(1, 1, -1, 1), persistent=False)
        self.register_buffer("psd", torch.ones(1, 1, self.bins, 1))
        self.register_buffer("s2a", torch.ones(1, 1, self.bins, 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        if t < self.n_fft:
            raise ValueError(f"critic input of {t} samples is shorter than its STFT size {self.n_fft}")
        spec = torch.stft(x.float().reshape(b * c, t), self.n_fft, hop_length=self.n_fft // 2, win_length=self.n_fft,
                          window=self.window, center=False, normalized=True, return_complex=True)
        spec = spec.reshape(b, c, self.bins, -1)
        frames = spec.shape[-1]
        bin_odd = torch.arange(self.bins, device=x.device)[:, None] % 2
        frame_odd = torch.arange(frames, device=x.device)[None, :] % 2
        spec = spec * (1.0 - 2.0 * (bin_odd * frame_odd)).to(spec.real.dtype) * self.bin_weights
        packed = torch.stack([spec.real, spec.imag], dim=3)  # [b, c, bins, 2, frames]
        return packed.reshape(b, self.encoded_channels, frames)


class TransformerCritic(nn.Module):
    """Front end -> resampling transformer -> ``decision_map``; ``forward(x) -> (logits, feature maps)``."""

    def __init__(self, pretransform: nn.Module, stride: int, depth: int, sliding_window: int,
                 max_depth_feature: int = 2, ff_mult: float = 1.5, dyt: bool = False, differential: bool = True,
                 checkpointing: bool = False, chunk_size: int = 128, **block_options: Any):
        super().__init__()
        del chunk_size  # only sizes chunks when there is no sliding window, and critics always have one
        dim = transformer_dim(pretransform.encoded_channels)
        self.discriminator = TransformerResamplingBlock(
            pretransform.encoded_channels, dim, stride, sliding_window=[sliding_window, sliding_window],
            transformer_depth=depth, checkpointing=checkpointing, differential=differential, ff_mult=ff_mult,
            dyt=dyt, dim_heads=64, **block_options)
        self.decision_map = nn.Conv1d(dim, 1, 1, bias=False)
        self.pretransform = pretransform
        self.max_depth_feature = max_depth_feature

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = F.pad(x, (0, -x.shape[-1] % self.pretransform.downsampling_ratio))
        x, features = self.discriminator(self.pretransform.encode(x), return_features=True)
        return self.decision_map(x), features[: self.max_depth_feature]


def _front_end(family: str, channels: int, size: int) -> nn.Module:
    if family == "stft":
        return TightComplexSTFT(channels, size)
    if family == "patched":
        return PatchedPretransform(channels, size)
    return WaveletPretransform(channels, size)


class TransformerCritics(nn.Module):
    """One family of critics (``discriminators.{i}``), one per entry of its size list."""

    def __init__(self, family: str, in_channels: int, sizes: Sequence[int], depths: Sequence[int],
                 strides: Sequence[int], sliding_window_widths: Sequence[int], **critic_options: Any):
        super().__init__()
        if not (len(sizes) == len(depths) == len(strides) == len(sliding_window_widths)) or not sizes:
            raise ValueError(f"the {family} critics need equally long, non-empty size, depths, strides and "
                             f"sliding_window_widths lists; got {len(sizes)}, {len(depths)}, {len(strides)}, "
                             f"{len(sliding_window_widths)}")
        self.discriminators = nn.ModuleList(
            TransformerCritic(_front_end(family, in_channels, size), stride, depth, width, **critic_options)
            for size, depth, stride, width in zip(sizes, depths, strides, sliding_window_widths, strict=True)
        )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        outputs = [critic(x) for critic in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]


SIZE_KEYS = {"stft": "n_ffts", "patched": "patch_sizes", "mfb": "levels"}


def _family(family: str, in_channels: int, options: Mapping[str, Any]) -> TransformerCritics:
    settings = {**FAMILY_DEFAULTS[family], **options}
    sizes = settings.pop(SIZE_KEYS[family])
    return TransformerCritics(family, in_channels, sizes, **settings)


class MultiTransformerDiscriminator(nn.Module):
    """All enabled critic families; ``loss(reals, fakes) -> (discriminator, adversarial, feature matching)``."""

    def __init__(self, normalize_losses: bool = False, loss_type: str = "rpgan", sample_rate: int = 44100,
                 in_channels: int = 2, stft_kwargs: Mapping[str, Any] | None = None,
                 patched_kwargs: Mapping[str, Any] | None = None, mfb_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        if loss_type not in GAN_OBJECTIVES:
            raise ValueError(f"loss_type must be one of {', '.join(GAN_OBJECTIVES)}; got {loss_type!r}")
        stft = dict(stft_kwargs or {})
        patched = dict(patched_kwargs or {})
        mfb = dict(mfb_kwargs or {})
        if stft.pop("enabled", False):
            self.stft_discriminators = _family("stft", in_channels, stft)
        if patched.pop("enabled", True):
            self.patched_discriminators = _family("patched", in_channels, patched)
        if mfb.pop("enabled", False):
            if mfb.pop("use_HIL", False):
                from stable_audio_ops.models.hil_discriminator import MultiFilterBankDiscriminator

                self.fb_discriminators = MultiFilterBankDiscriminator(in_channels=in_channels, **mfb)
            else:
                self.fb_discriminators = _family("mfb", in_channels, mfb)
        self.normalize_losses = normalize_losses
        self.loss_type = loss_type
        self.sample_rate = sample_rate
        self.last_disc_loss = 1.0

    def families(self) -> list[nn.Module]:
        return [getattr(self, name) for name in ("stft_discriminators", "patched_discriminators", "fb_discriminators")
                if hasattr(self, name)]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        if self.last_disc_loss < 0.1:
            x = x + torch.randn_like(x) * x.std() * 10 * (0.1 - self.last_disc_loss)
        logits, features = [], []
        for family in self.families():
            family_logits, family_features = family(x)
            logits.extend(family_logits)
            features.extend(family_features)
        return logits, features

    def loss(self, reals: torch.Tensor, fakes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits_real, features_real = self(reals)
        logits_fake, features_fake = self(fakes)
        dis, adv, fm = multi_critic_losses(logits_real, logits_fake, features_real, features_fake, self.loss_type,
                                           self.normalize_losses, finite_terms=True)
        self.last_disc_loss = 0.99 * self.last_disc_loss + 0.01 * float(dis.detach())
        return dis, adv, fm
