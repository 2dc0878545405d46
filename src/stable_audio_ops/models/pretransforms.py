"""Pretransforms: fixed (usually frozen) transforms applied before/after a model, e.g. a VAE under a
latent diffusion model. An autoencoder's keys live under ``pretransform.model.*`` in the parent's state
dict; the signal pretransforms (``wavelet``, ``pqmf``, ``patched``) hold only filter buffers and, for
``patched`` with a postfilter, a small decode-side network.

Every pretransform exposes ``encode``/``decode``, ``io_channels`` (audio channels), ``encoded_channels``,
``downsampling_ratio`` (audio samples per encoded frame) and ``is_discrete``. Builders from config
nodes are here too; :mod:`.autoencoder_factory` holds the ``PRETRANSFORMS`` registry.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.autoencoder import AudioAutoencoder
from stable_audio_ops.models.blocks import wn_conv1d
from stable_audio_ops.models.oobleck import ResidualUnit
from stable_audio_ops.models.pqmf import PQMF
from stable_audio_ops.models.resample import SincResample
from stable_audio_ops.models.wavelets import WaveletDecode1d, WaveletEncode1d


class AutoencoderPretransform(nn.Module):
    """Wraps a trained :class:`AudioAutoencoder`; ``encode`` returns latents / ``scale``.

    The inner model is frozen and in eval mode (its VAE still samples, as upstream). ``model_half``
    runs it in fp16 (inputs cast in, outputs cast back to fp32); ``iterate_batch`` and ``chunked``
    trade speed for peak memory on long inputs.
    """

    def __init__(self, model: AudioAutoencoder, scale: float = 1.0, model_half: bool = False,
                 iterate_batch: bool = False, chunked: bool = False, enable_grad: bool = False):
        super().__init__()
        self.model = model
        self.scale = float(scale)
        self.model_half = bool(model_half)
        self.iterate_batch = bool(iterate_batch)
        self.chunked = bool(chunked)
        self.enable_grad = bool(enable_grad)
        self.downsampling_ratio = model.downsampling_ratio
        self.io_channels = model.io_channels
        self.sample_rate = model.sample_rate
        self.encoded_channels = model.latent_dim
        self.is_discrete = model.is_discrete
        self.model.requires_grad_(self.enable_grad).eval()
        if self.model_half:
            self.model.half()

    def train(self, mode: bool = True) -> AutoencoderPretransform:
        # A frozen pretransform stays in eval mode even when the parent model is put in training mode,
        # so e.g. its residual units never switch to gradient checkpointing.
        super().train(mode and self.enable_grad)
        return self

    def encode(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.model_half:
            x = x.half()
            self.model.to(torch.float16)
        encoded = self.model.encode_audio(x, chunked=self.chunked, iterate_batch=self.iterate_batch, **kwargs)
        if self.model_half:
            encoded = encoded.float()
        return encoded / self.scale

    def decode(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        z = z * self.scale
        if self.model_half:
            z = z.half()
            self.model.to(torch.float16)
        decoded = self.model.decode_audio(z, chunked=self.chunked, iterate_batch=self.iterate_batch, **kwargs)
        if self.model_half:
            decoded = decoded.float()
        return decoded

    # --- discrete tokens (upstream's tokenize/decode_tokens; what an ``lm`` model trains on) -------------------
    @property
    def num_quantizers(self) -> int | None:
        return getattr(self.model.bottleneck, "num_quantizers", None) if self.is_discrete else None

    @property
    def codebook_size(self) -> int | None:
        return getattr(self.model.bottleneck, "codebook_size", None) if self.is_discrete else None

    @property
    def tokens_layout(self) -> str:
        """Axes of :meth:`tokenize`'s output, the bottleneck's (``"b t q"`` for rvq, ``"b q t"`` for dac_rvq/fsq)."""
        return getattr(self.model.bottleneck, "tokens_layout", "b q t")

    def tokenize(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Audio -> the bottleneck's tokens (``info[tokens_id]``, in the bottleneck's layout, as upstream)."""
        if not self.is_discrete:
            raise ValueError("tokenize needs an autoencoder with a discrete bottleneck "
                             f"(this one has {type(self.model.bottleneck).__name__})")
        _, info = self.model.encode(x, return_info=True, **kwargs)
        return info[self.model.bottleneck.tokens_id]

    def decode_tokens(self, tokens: torch.Tensor, **kwargs) -> torch.Tensor:
        """Tokens in the layout :meth:`tokenize` gives -> audio."""
        return self.model.decode_tokens(tokens, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Load an *unwrapped autoencoder* checkpoint (keys ``encoder.*``, ``decoder.*``) into the inner
        model, which is what ``--pretransform-ckpt-path`` hands over (upstream behaviour)."""
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)


class WaveletPretransform(nn.Module):
    """``wavelet``: a ``levels``-level discrete wavelet transform (:mod:`.wavelets`); lossless up to
    float rounding, ``channels * 2**levels`` encoded channels at ``1 / 2**levels`` of the rate."""

    is_discrete = False

    def __init__(self, channels: int, levels: int, wavelet: str = "bior4.4"):
        super().__init__()
        self.encoder = WaveletEncode1d(channels, levels, wavelet)
        self.decoder = WaveletDecode1d(channels, levels, wavelet)
        self.io_channels = channels
        self.downsampling_ratio = 2 ** levels
        self.encoded_channels = channels * self.downsampling_ratio
        self.enable_grad = False

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class PQMFPretransform(nn.Module):
    """``pqmf``: a pseudo-QMF bank (:mod:`.pqmf`), ``num_bands`` bands per channel at ``1 / num_bands``
    of the rate, laid out ``b (c bands) t``; near-perfect reconstruction.

    Difference from stable-audio-tools 0.0.20, where this pretransform cannot be built at all with
    current SciPy: it reports ``downsampling_ratio = num_bands`` and ``encoded_channels`` (upstream
    leaves them unset, so no model could sit on it).
    """

    is_discrete = False

    def __init__(self, attenuation: float = 100, num_bands: int = 16, channels: int = 1):
        super().__init__()
        self.pqmf = PQMF(attenuation, num_bands)
        self.io_channels = channels
        self.downsampling_ratio = num_bands
        self.encoded_channels = channels * num_bands
        self.enable_grad = False

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.pqmf(x), "b c n t -> b (c n) t")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.pqmf.inverse(rearrange(z, "b (c n) t -> b c n t", c=self.io_channels))


class PatchedPretransform(nn.Module):
    """``patched``: folds each run of ``patch_size`` samples into channels (``b c (l h) -> b (c h) l``).

    ``encode`` zero-pads the end to a multiple of ``patch_size`` (``decode`` returns the padded length).
    Options: ``oversampling`` resamples up before encoding and back down after decoding;
    ``postfilter_channels`` adds a trainable decode-side postfilter (WN conv k7 -> three snake residual
    units, dilations 1/3/9 -> WN conv k7 without bias), keys ``postfilter.*`` as upstream.

    Difference from stable-audio-tools 0.0.20: with ``oversampling`` > 1 upstream still reports
    ``downsampling_ratio = patch_size``, so generation sized latents for twice the audio it decodes to;
    here it is ``patch_size / oversampling``, the real number of audio samples per frame.
    """

    is_discrete = False

    def __init__(self, channels: int, patch_size: int, oversampling: int = 1, postfilter_channels: int = 0):
        super().__init__()
        if patch_size % oversampling:
            raise ValueError(f"patch_size {patch_size} must be a multiple of oversampling {oversampling}")
        self.channels, self.patch_size, self.oversampling = channels, patch_size, oversampling
        self.io_channels = channels
        self.encoded_channels = channels * patch_size
        self.downsampling_ratio = patch_size // oversampling
        self.enable_grad = False
        if oversampling > 1:
            self.input_upsampler = SincResample(1, oversampling)
            self.output_downsampler = SincResample(oversampling, 1)
        self.postfilter = None
        if postfilter_channels > 0:
            self.postfilter = nn.Sequential(
                wn_conv1d(channels, postfilter_channels, kernel_size=7, padding=3),
                *(ResidualUnit(postfilter_channels, postfilter_channels, dilation=d, use_snake=True)
                  for d in (1, 3, 9)),
                wn_conv1d(postfilter_channels, channels, kernel_size=7, padding=3, bias=False),
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.oversampling > 1:
            x = self.input_upsampler(x)
        x = F.pad(x, (0, -x.shape[-1] % self.patch_size))
        return rearrange(x, "b c (l h) -> b (c h) l", h=self.patch_size)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = rearrange(z, "b (c h) l -> b c (l h)", h=self.patch_size)
        if self.postfilter is not None:
            x = self.postfilter(x)
        if self.oversampling > 1:
            x = self.output_downsampler(x)
        return x


def build_wavelet_pretransform(node: ConfigNode, sample_rate: int) -> WaveletPretransform:
    """``{"type": "wavelet", "config": {channels, levels, wavelet}}`` (``sample_rate`` unused)."""
    cfg = node.child("config")
    check_known_keys(cfg, ("channels", "levels", "wavelet"))
    wavelet = cfg.get("wavelet", "a string", "bior4.4")
    try:
        return WaveletPretransform(cfg.get("channels", "a positive int"), cfg.get("levels", "a positive int"),
                                   wavelet)
    except ValueError as err:
        raise cfg.error(str(err), "wavelet") from err


def build_pqmf_pretransform(node: ConfigNode, sample_rate: int) -> PQMFPretransform:
    """``{"type": "pqmf", "config": {attenuation, num_bands, channels}}`` (``sample_rate`` unused)."""
    cfg = node.child("config", {})
    check_known_keys(cfg, ("attenuation", "num_bands", "channels"))
    num_bands = cfg.get("num_bands", "a positive int", 16)
    if num_bands & (num_bands - 1):
        raise cfg.error(f"must be a power of two, got {num_bands}", "num_bands")
    return PQMFPretransform(cfg.get("attenuation", "a positive number", 100), num_bands,
                            cfg.get("channels", "a positive int", 1))


def build_patched_pretransform(node: ConfigNode, sample_rate: int) -> PatchedPretransform:
    """``{"type": "patched", "config": {channels, patch_size, oversampling, postfilter_channels}}``."""
    cfg = node.child("config")
    check_known_keys(cfg, ("channels", "patch_size", "oversampling", "postfilter_channels"))
    patch_size = cfg.get("patch_size", "a positive int")
    oversampling = cfg.get("oversampling", "a positive int", 1)
    if patch_size % oversampling:
        raise cfg.error(f"{oversampling} does not divide patch_size {patch_size} (audio samples per encoded "
                        "frame would not be whole)", "oversampling")
    return PatchedPretransform(cfg.get("channels", "a positive int"), patch_size, oversampling,
                               cfg.get("postfilter_channels", "a non-negative int", 0))
