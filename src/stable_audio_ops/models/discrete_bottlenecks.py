"""Quantizing bottlenecks: ``rvq``, ``rvq_vae``, ``dac_rvq``, ``dac_rvq_vae``, ``fsq``, ``dithered_fsq``.

Each has ``is_discrete = True``, ``tokens_id`` (the ``info`` key holding its tokens, what
``pre_encode --is-discrete`` saves), ``num_quantizers``, ``codebook_size`` and ``decode_tokens``.

Token layouts are 0.0.20's, which differ by type (pre-encoded token files must stay compatible):
``rvq``/``rvq_vae`` and ``dithered_fsq`` give ``[B, T, Q]``, ``fsq``/``dac_rvq``/``dac_rvq_vae``
``[B, Q, T]``. ``decode_tokens(tokens)`` takes tokens in the layout ``encode`` gave and returns
channels-first latents ``[B, C, T]``, ready for ``AudioAutoencoder.decode``. This differs from 0.0.20,
where ``decode_tokens`` of rvq, fsq and dithered_fsq returned channels-last latents (so
``AudioAutoencoder.decode_tokens`` raised), fsq expected ``[B, T, Q]`` although its ``encode`` gave
``[B, Q, T]``, and the bottleneck's ``decode`` was applied twice (once in the bottleneck's
``decode_tokens``, again in the model's ``decode``), doubling ``noise_augment_dim`` channels.

Also fixed: with ``quantize_on_decode`` 0.0.20's DAC bottlenecks return a tuple from ``encode`` even
without ``return_info``; ``fsq`` with one codebook needs no ``keep_num_codebooks_dim`` here (0.0.20
raises in ``encode`` without it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.dac_quantizer import DACResidualVQ
from stable_audio_ops.models.fsq import FSQ, DitheredFSQ
from stable_audio_ops.models.residual_vq import ResidualVQ
from stable_audio_ops.models.vae_sampling import append_noise_channels, split_mean_scale, vae_sample


def _result(x: torch.Tensor, info: dict[str, Any], return_info: bool):
    return (x, info) if return_info else x


class RVQBottleneck(nn.Module):
    """EMA residual VQ over the latent frames; ``info``: ``quantizer_indices`` ``[B, T, Q]`` and
    ``quantizer_loss`` (mean commitment loss over stages; 0 in eval mode)."""

    is_discrete = True
    tokens_id = "quantizer_indices"
    tokens_layout = "b t q"  # axes of the tokens in info[tokens_id]
    encoder_channels_per_latent = 1

    def __init__(self, **quantizer_kwargs: Any):
        super().__init__()
        self.quantizer = ResidualVQ(**quantizer_kwargs)
        self.num_quantizers = self.quantizer.num_quantizers
        self.codebook_size = self.quantizer.codebook_size

    def _quantize(self, x: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
        quantized, indices, losses = self.quantizer(x.transpose(1, 2))
        info["quantizer_indices"] = indices
        info["quantizer_loss"] = losses.mean()
        return quantized.transpose(1, 2)

    def encode(self, x: torch.Tensor, return_info: bool = False, **kwargs):
        info: dict[str, Any] = {}
        return _result(self._quantize(x, info), info, return_info)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, Q]`` -> latents ``[B, C, T]`` (sum of the chosen codes)."""
        return self.quantizer.get_output_from_indices(tokens).transpose(1, 2)


class RVQVAEBottleneck(RVQBottleneck):
    """VAE sample (``info["kl"]``), then the residual VQ; the encoder emits ``2 * latent_dim`` channels."""

    encoder_channels_per_latent = 2

    def encode(self, x: torch.Tensor, return_info: bool = False, noise: torch.Tensor | None = None, **kwargs):
        info: dict[str, Any] = {}
        x, info["kl"] = vae_sample(*split_mean_scale(x), noise=noise)
        return _result(self._quantize(x, info), info, return_info)


class DACRVQBottleneck(nn.Module):
    """DAC residual VQ; ``info``: ``pre_quantizer``, ``z``, ``codes`` ``[B, Q, T]``, ``latents`` (the
    projected per-stage inputs) and ``vq/commitment_loss`` / ``vq/codebook_loss`` (divided by the
    number of codebooks). ``encode(..., n_quantizers=k)`` uses the first k codebooks (eval mode).

    ``quantize_on_decode`` moves the quantization from ``encode`` to ``decode`` (latents stay
    continuous, e.g. for a diffusion model trained on them); ``noise_augment_dim`` appends noise
    channels in ``decode``.
    """

    is_discrete = True
    tokens_id = "codes"
    tokens_layout = "b q t"  # axes of the tokens in info[tokens_id]
    encoder_channels_per_latent = 1

    def __init__(self, quantize_on_decode: bool = False, noise_augment_dim: int = 0, **quantizer_kwargs: Any):
        super().__init__()
        self.quantizer = DACResidualVQ(**quantizer_kwargs)
        self.num_quantizers = self.quantizer.n_codebooks
        self.codebook_size = self.quantizer.codebook_size
        self.quantize_on_decode = bool(quantize_on_decode)
        self.noise_augment_dim = int(noise_augment_dim)

    def _quantize(self, x: torch.Tensor, info: dict[str, Any], n_quantizers: int | None) -> torch.Tensor:
        info["pre_quantizer"] = x
        if self.quantize_on_decode:
            return x
        z, codes, latents, commitment, codebook = self.quantizer(x, n_quantizers=n_quantizers)
        info.update({"z": z, "codes": codes, "latents": latents,
                     "vq/commitment_loss": commitment / self.num_quantizers,
                     "vq/codebook_loss": codebook / self.num_quantizers})
        return z

    def encode(self, x: torch.Tensor, return_info: bool = False, n_quantizers: int | None = None, **kwargs):
        info: dict[str, Any] = {}
        return _result(self._quantize(x, info, n_quantizers), info, return_info)

    def decode(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.quantize_on_decode:
            x = self.quantizer(x)[0]
        return append_noise_channels(x, self.noise_augment_dim, noise)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, Q, T]`` (the first Q codebooks) -> latents ``[B, C, T]``."""
        return self.quantizer.from_codes(tokens)


class DACRVQVAEBottleneck(DACRVQBottleneck):
    """VAE sample (``info["kl"]``, ``info["pre_quantizer"]``), then the DAC residual VQ."""

    encoder_channels_per_latent = 2

    def encode(self, x: torch.Tensor, return_info: bool = False, n_quantizers: int | None = None,
               noise: torch.Tensor | None = None, **kwargs):
        info: dict[str, Any] = {}
        x, info["kl"] = vae_sample(*split_mean_scale(x), noise=noise)
        return _result(self._quantize(x, info, n_quantizers), info, return_info)


class FSQBottleneck(nn.Module):
    """Finite scalar quantization in float32; ``info["quantizer_indices"]`` ``[B, Q, T]``."""

    is_discrete = True
    tokens_id = "quantizer_indices"
    tokens_layout = "b q t"  # axes of the tokens in info[tokens_id]
    encoder_channels_per_latent = 1

    def __init__(self, levels: list[int], dim: int | None = None, num_codebooks: int = 1,
                 projection_has_bias: bool = True, noise_augment_dim: int = 0):
        super().__init__()
        self.quantizer = FSQ(levels, dim=dim, num_codebooks=num_codebooks, projection_has_bias=projection_has_bias)
        self.num_quantizers = num_codebooks
        self.codebook_size = self.quantizer.codebook_size
        self.noise_augment_dim = int(noise_augment_dim)

    def encode(self, x: torch.Tensor, return_info: bool = False, **kwargs):
        codes, indices = self.quantizer(x.float().transpose(1, 2))
        info = {"quantizer_indices": indices.transpose(1, 2)}
        return _result(codes.transpose(1, 2).to(x.dtype), info, return_info)

    def decode(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return append_noise_channels(x, self.noise_augment_dim, noise)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, Q, T]`` -> latents ``[B, C, T]``."""
        return self.quantizer.indices_to_codes(tokens.transpose(1, 2)).transpose(1, 2)


class DitheredFSQBottleneck(nn.Module):
    """stable-audio-tools' dithered FSQ; ``info["quantizer_indices"]`` ``[B, T, Q]``."""

    is_discrete = True
    tokens_id = "quantizer_indices"
    tokens_layout = "b t q"  # axes of the tokens in info[tokens_id]
    encoder_channels_per_latent = 1

    def __init__(self, levels: list[int], num_codebooks: int = 1, dither_inference: bool = True,
                 noise_dropout: float = 0.05):
        super().__init__()
        self.quantizer = DitheredFSQ(levels, num_codebooks=num_codebooks, dither_inference=dither_inference,
                                     noise_dropout=noise_dropout)
        self.num_quantizers = num_codebooks
        self.codebook_size = self.quantizer.codebook_size

    def encode(self, x: torch.Tensor, return_info: bool = False, **kwargs):
        codes, indices = self.quantizer(x.transpose(1, 2))
        return _result(codes.transpose(1, 2), {"quantizer_indices": indices}, return_info)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, Q]`` -> latents ``[B, C, T]``."""
        return self.quantizer.indices_to_codes(tokens).transpose(1, 2)


# --- builders (node of the ``bottleneck`` object -> module) ------------------------------------------

# vector-quantize-pytorch's ResidualVQ options this implementation supports, with 0.0.20's defaults
# (the factory's for dim .. threshold_ema_dead_code, the library's for the rest).
_RVQ_DEFAULTS: dict[str, tuple[str, Any]] = {
    "dim": ("a positive int", 128),
    "codebook_size": ("a positive int", 1024),
    "num_quantizers": ("a positive int", 8),
    "decay": ("a non-negative number", 0.99),
    "kmeans_init": ("a bool", True),
    "kmeans_iters": ("a non-negative int", 50),
    "threshold_ema_dead_code": ("a non-negative number", 2),
    "codebook_dim": ("a positive int", None),
    "eps": ("a positive number", 1e-5),
    "commitment_weight": ("a non-negative number", 1.0),
    "reset_cluster_size": ("a non-negative number", None),
    "quantize_dropout": ("a bool", False),
    "quantize_dropout_cutoff_index": ("a non-negative int", 0),
    "quantize_dropout_multiple_of": ("a positive int", 1),
    "sync_codebook": ("a bool", None),
}


def _rvq_kwargs(node: ConfigNode) -> dict[str, Any]:
    cfg = node.child("config", {})
    check_known_keys(cfg, tuple(_RVQ_DEFAULTS))
    kwargs = {key: cfg.get(key, kind, default) for key, (kind, default) in _RVQ_DEFAULTS.items()}
    if not kwargs["decay"] <= 1:
        raise cfg.error(f"must be in [0, 1], got {kwargs['decay']}", "decay")
    kwargs["sync"] = kwargs.pop("sync_codebook")
    return kwargs


def _build_rvq(node: ConfigNode) -> nn.Module:
    return RVQBottleneck(**_rvq_kwargs(node))


def _build_rvq_vae(node: ConfigNode) -> nn.Module:
    return RVQVAEBottleneck(**_rvq_kwargs(node))


def _dac_kwargs(node: ConfigNode) -> dict[str, Any]:
    cfg = node.child("config", {})
    check_known_keys(cfg, ("input_dim", "n_codebooks", "codebook_size", "codebook_dim", "quantizer_dropout",
                           "quantize_on_decode", "noise_augment_dim"))
    codebook_dim = cfg.get("codebook_dim", "any value", 8)
    n_codebooks = cfg.get("n_codebooks", "a positive int", 9)
    if isinstance(codebook_dim, list):
        ok = len(codebook_dim) == n_codebooks and all(isinstance(d, int) and d > 0 for d in codebook_dim)
    else:
        ok = isinstance(codebook_dim, int) and not isinstance(codebook_dim, bool) and codebook_dim > 0
    if not ok:
        raise cfg.error(f"expected a positive int or a list of {n_codebooks} positive ints, got {codebook_dim!r}",
                        "codebook_dim")
    dropout = cfg.get("quantizer_dropout", "any value", 0.0)
    if isinstance(dropout, bool):  # DAC accepts a bool (True = every item may drop stages)
        dropout = float(dropout)
    if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise cfg.error(f"expected a number in [0, 1] (or a bool), got {dropout!r}", "quantizer_dropout")
    return {
        "input_dim": cfg.get("input_dim", "a positive int", 512),
        "n_codebooks": n_codebooks,
        "codebook_size": cfg.get("codebook_size", "a positive int", 1024),
        "codebook_dim": codebook_dim,
        "quantizer_dropout": dropout,
        "quantize_on_decode": cfg.get("quantize_on_decode", "a bool", False),
        "noise_augment_dim": cfg.get("noise_augment_dim", "a non-negative int", 0),
    }


def _build_dac_rvq(node: ConfigNode) -> nn.Module:
    return DACRVQBottleneck(**_dac_kwargs(node))


def _build_dac_rvq_vae(node: ConfigNode) -> nn.Module:
    kwargs = _dac_kwargs(node)
    if kwargs.pop("noise_augment_dim"):
        raise node.error("dac_rvq_vae has no noise_augment_dim (0.0.20 rejects it)", "config.noise_augment_dim")
    return DACRVQVAEBottleneck(**kwargs)


def _levels(cfg: ConfigNode) -> list[int]:
    levels = cfg.get("levels", "a list of ints")
    if not levels or any(v < 2 for v in levels):
        raise cfg.error(f"expected a non-empty list of ints >= 2, got {levels!r}", "levels")
    return list(levels)


def _build_fsq(node: ConfigNode) -> nn.Module:
    cfg = node.child("config")
    check_known_keys(cfg, ("levels", "dim", "num_codebooks", "keep_num_codebooks_dim", "projection_has_bias",
                           "noise_augment_dim", "scale"))  # scale: stored, never read by FSQ 1.14.41
    num_codebooks = cfg.get("num_codebooks", "a positive int", 1)
    if num_codebooks > 1 and cfg.get("keep_num_codebooks_dim", "a bool", None) is False:
        raise cfg.error("must not be false with num_codebooks > 1", "keep_num_codebooks_dim")
    return FSQBottleneck(
        levels=_levels(cfg),
        dim=cfg.get("dim", "a positive int", None),
        num_codebooks=num_codebooks,
        projection_has_bias=cfg.get("projection_has_bias", "a bool", True),
        noise_augment_dim=cfg.get("noise_augment_dim", "a non-negative int", 0),
    )


def _build_dithered_fsq(node: ConfigNode) -> nn.Module:
    cfg = node.child("config")
    check_known_keys(cfg, ("dim", "levels", "num_codebooks", "dither_inference", "noise_dropout"))
    dim = cfg.get("dim", "a positive int")
    raw = cfg.get("levels", "any value")
    if isinstance(raw, int) and not isinstance(raw, bool):
        levels = [raw] * dim
    else:
        levels = _levels(cfg)
    if len(levels) != dim:
        raise cfg.error(f"has {len(levels)} entries but dim is {dim}; they must match", "levels")
    if any(v < 2 for v in levels):
        raise cfg.error(f"every level count must be >= 2, got {levels!r}", "levels")
    noise_dropout = cfg.get("noise_dropout", "a non-negative number", 0.05)
    if noise_dropout > 1:
        raise cfg.error(f"must be in [0, 1], got {noise_dropout}", "noise_dropout")
    return DitheredFSQBottleneck(
        levels=levels,
        num_codebooks=cfg.get("num_codebooks", "a positive int", 1),
        dither_inference=cfg.get("dither_inference", "a bool", True),
        noise_dropout=noise_dropout,
    )


DISCRETE_BOTTLENECKS: dict[str, Callable[[ConfigNode], nn.Module]] = {
    "rvq": _build_rvq,
    "rvq_vae": _build_rvq_vae,
    "dac_rvq": _build_dac_rvq,
    "dac_rvq_vae": _build_dac_rvq_vae,
    "fsq": _build_fsq,
    "dithered_fsq": _build_dithered_fsq,
}

__all__ = ["DISCRETE_BOTTLENECKS", "DACRVQBottleneck", "DACRVQVAEBottleneck", "DitheredFSQBottleneck",
           "FSQBottleneck", "RVQBottleneck", "RVQVAEBottleneck"]
