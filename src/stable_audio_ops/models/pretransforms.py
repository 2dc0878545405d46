"""Pretransforms: fixed (usually frozen) transforms applied before/after a model, e.g. a VAE under a
latent diffusion model. Keys live under ``pretransform.model.*`` in the parent's state dict.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from stable_audio_ops.models.autoencoder import AudioAutoencoder


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

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Load an *unwrapped autoencoder* checkpoint (keys ``encoder.*``, ``decoder.*``) into the inner
        model, which is what ``--pretransform-ckpt-path`` hands over (upstream behaviour)."""
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)
