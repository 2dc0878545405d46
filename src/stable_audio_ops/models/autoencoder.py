"""AudioAutoencoder: encoder + optional bottleneck + decoder (+ optional nested pretransform).

Mirrors stable-audio-tools' ``AudioAutoencoder`` API and state-dict layout (``encoder.*``,
``decoder.*``, ``bottleneck.*``, ``pretransform.model.*``) so released checkpoints load unchanged.
Long inputs can be processed in overlapping chunks (``encode_audio`` / ``decode_audio``) to bound
memory; chunk size and overlap are counted in latent frames for both directions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn


def _per_item(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, iterate_batch: bool) -> torch.Tensor:
    """Apply ``fn`` to the whole batch, or one item at a time (lower peak memory, same result)."""
    if not iterate_batch:
        return fn(x)
    return torch.cat([fn(x[i : i + 1]) for i in range(x.shape[0])], dim=0)


def chunk_plan(total: int, chunk_size: int, overlap: int) -> list[tuple[int, int, int]]:
    """Where each chunk reads and which part of it is kept, in latent frames.

    Returns ``(start, keep_from, keep_to)`` per chunk: the chunk covers ``[start, start + chunk_size)``
    and contributes ``[keep_from, keep_to)`` to the output. Chunks hop by ``chunk_size - overlap``;
    the last chunk is right-aligned to the end (so it may overlap its neighbour more); half the
    overlap is dropped at every inner edge, where the receptive field sees the artificial boundary.
    This is the scheme upstream documents for ``encode_audio``/``decode_audio``.
    """
    if chunk_size <= 0 or overlap < 0 or overlap >= chunk_size:
        raise ValueError(f"need 0 <= overlap < chunk_size, got overlap={overlap}, chunk_size={chunk_size}")
    if total <= chunk_size:
        return [(0, 0, total)]
    hop = chunk_size - overlap
    starts = list(range(0, total - chunk_size + 1, hop))
    if starts[-1] + chunk_size != total:
        starts.append(total - chunk_size)
    trim = overlap // 2
    plan = []
    for i, start in enumerate(starts):
        keep_from = start + (trim if i > 0 else 0)
        keep_to = start + chunk_size - (trim if i < len(starts) - 1 else 0)
        plan.append((start, keep_from, keep_to))
    return plan


def _run_chunked(fn: Callable[[torch.Tensor, int, int], torch.Tensor], x: torch.Tensor, total_latents: int,
                 in_per_latent: int, out_per_latent: int, chunk_size: int, overlap: int) -> torch.Tensor:
    """Run ``fn(x_chunk, latent_start, latent_len)`` over the plan and stitch the outputs on the time axis."""
    out: torch.Tensor | None = None
    for start, keep_from, keep_to in chunk_plan(total_latents, chunk_size, overlap):
        length = min(chunk_size, total_latents)
        y = fn(x[..., start * in_per_latent : (start + length) * in_per_latent], start, length)
        if out is None:
            out = y.new_zeros((y.shape[0], y.shape[1], total_latents * out_per_latent))
        a, b = (keep_from - start) * out_per_latent, (keep_to - start) * out_per_latent
        out[..., keep_from * out_per_latent : keep_to * out_per_latent] = y[..., a:b]
    assert out is not None
    return out


def _set_channels(audio: torch.Tensor, channels: int) -> torch.Tensor:
    """[C, T] -> [channels, T]: mono = channel mean; stereo = duplicate mono / keep the first two."""
    if channels == 1:
        return audio.mean(0, keepdim=True)
    if audio.shape[0] == 1:
        return audio.repeat(channels, 1)
    return audio[:channels]


def resample_tensor(audio: torch.Tensor, in_sr: int, out_sr: int) -> torch.Tensor:
    """Resample ``[C, T]`` with soxr (high quality), keeping dtype and device."""
    if in_sr == out_sr:
        return audio
    import soxr

    array = audio.detach().to("cpu", torch.float32).numpy().T  # soxr wants [T, C]
    out = soxr.resample(np.ascontiguousarray(array), in_sr, out_sr)
    return torch.from_numpy(np.ascontiguousarray(out.T)).to(device=audio.device, dtype=audio.dtype)


class AudioAutoencoder(nn.Module):
    """Audio <-> latents. ``encode`` returns what a diffusion model trains on (after the bottleneck)."""

    def __init__(self, encoder: nn.Module | None, decoder: nn.Module | None, latent_dim: int,
                 downsampling_ratio: int, sample_rate: int, io_channels: int = 2,
                 bottleneck: nn.Module | None = None, pretransform: nn.Module | None = None,
                 in_channels: int | None = None, out_channels: int | None = None, soft_clip: bool = False):
        super().__init__()
        self.downsampling_ratio = int(downsampling_ratio)
        self.sample_rate = int(sample_rate)
        self.latent_dim = int(latent_dim)
        self.io_channels = int(io_channels)
        self.in_channels = int(in_channels) if in_channels is not None else self.io_channels
        self.out_channels = int(out_channels) if out_channels is not None else self.io_channels
        self.min_length = self.downsampling_ratio
        self.bottleneck = bottleneck
        self.encoder = encoder
        self.decoder = decoder
        self.pretransform = pretransform
        self.soft_clip = bool(soft_clip)
        self.is_discrete = bool(bottleneck is not None and getattr(bottleneck, "is_discrete", False))

    # --- pretransform helpers -------------------------------------------------------------------
    def _through_pretransform(self, method: str, x: torch.Tensor, iterate_batch: bool) -> torch.Tensor:
        fn = getattr(self.pretransform, method)
        if getattr(self.pretransform, "enable_grad", False):
            return _per_item(fn, x, iterate_batch)
        with torch.no_grad():
            return _per_item(fn, x, iterate_batch)

    # --- core API -------------------------------------------------------------------------------
    def encode(self, audio: torch.Tensor, return_info: bool = False, skip_bottleneck: bool = False,
               iterate_batch: bool = False, skip_pretransform: bool = False, **kwargs):
        """Audio ``[B, in_channels, T]`` -> latents ``[B, latent_dim, T / downsampling_ratio]``.

        ``info`` holds ``pre_bottleneck_latents`` plus the bottleneck's entries (VAE: ``kl``).
        ``kwargs`` go to the bottleneck (the VAE accepts ``noise=`` to pin its sample).
        """
        info: dict[str, torch.Tensor] = {}
        if self.pretransform is not None and not skip_pretransform:
            audio = self._through_pretransform("encode", audio, iterate_batch)
        latents = _per_item(self.encoder, audio, iterate_batch) if self.encoder is not None else audio
        info["pre_bottleneck_latents"] = latents
        if self.bottleneck is not None and not skip_bottleneck:
            latents, bottleneck_info = self.bottleneck.encode(latents, return_info=True, **kwargs)
            info.update(bottleneck_info)
        return (latents, info) if return_info else latents

    def decode(self, latents: torch.Tensor, skip_bottleneck: bool = False, iterate_batch: bool = False,
               **kwargs) -> torch.Tensor:
        """Latents ``[B, latent_dim, L]`` -> audio ``[B, out_channels, L * downsampling_ratio]``."""
        if self.bottleneck is not None and not skip_bottleneck:
            latents = _per_item(self.bottleneck.decode, latents, iterate_batch)
        if self.decoder is not None:
            decoded = _per_item(lambda z: self.decoder(z, **kwargs), latents, iterate_batch)
        else:
            decoded = latents
        if self.pretransform is not None:
            decoded = self._through_pretransform("decode", decoded, iterate_batch)
        if self.soft_clip:
            decoded = torch.tanh(decoded)
        return decoded

    def decode_tokens(self, tokens: torch.Tensor, **kwargs) -> torch.Tensor:
        """Discrete tokens (in the layout ``encode``'s ``info[bottleneck.tokens_id]`` has) -> audio.

        The bottleneck turns tokens into channels-first latents; ``decode`` then runs the bottleneck's
        ``decode`` once and the decoder (0.0.20 raises here for rvq/fsq/dithered_fsq, see
        :mod:`stable_audio_ops.models.discrete_bottlenecks`).
        """
        if not self.is_discrete:
            raise ValueError("decode_tokens needs an autoencoder with a discrete bottleneck "
                             f"(this one has {type(self.bottleneck).__name__})")
        return self.decode(self.bottleneck.decode_tokens(tokens), **kwargs)

    # --- chunked I/O ----------------------------------------------------------------------------
    def encode_audio(self, audio: torch.Tensor, chunked: bool = False, overlap: int = 32, chunk_size: int = 128,
                     **kwargs) -> torch.Tensor:
        """Encode preprocessed audio, optionally in overlapping chunks (sizes in latent frames).

        The overlap should cover the encoder's receptive field, otherwise chunk seams differ from a
        full encode. A ``noise=`` tensor for the whole latent sequence is sliced per chunk, so a
        chunked VAE encode uses the same noise as an unchunked one.
        """
        if not chunked:
            return self.encode(audio, **kwargs)
        ratio = self.downsampling_ratio
        if audio.shape[-1] % ratio:
            raise ValueError(
                f"chunked encode needs a length that is a multiple of downsampling_ratio={ratio}, got "
                f"{audio.shape[-1]} (use preprocess_audio_for_encoder to pad)"
            )
        noise = kwargs.pop("noise", None)

        def encode_chunk(x: torch.Tensor, start: int, length: int) -> torch.Tensor:
            extra = dict(kwargs)
            if noise is not None:
                extra["noise"] = noise[..., start : start + length]
            return self.encode(x, **extra)

        return _run_chunked(encode_chunk, audio, audio.shape[-1] // ratio, ratio, 1, chunk_size, overlap)

    def decode_audio(self, latents: torch.Tensor, chunked: bool = False, overlap: int = 32, chunk_size: int = 128,
                     **kwargs) -> torch.Tensor:
        """Decode latents, optionally in overlapping chunks (sizes in latent frames)."""
        if not chunked:
            return self.decode(latents, **kwargs)
        return _run_chunked(lambda z, _s, _n: self.decode(z, **kwargs), latents, latents.shape[-1], 1,
                            self.downsampling_ratio, chunk_size, overlap)

    # --- preprocessing --------------------------------------------------------------------------
    def preprocess_audio_for_encoder(self, audio: torch.Tensor, in_sr: int) -> torch.Tensor:
        """One clip ``[C, T]`` (or ``[T]`` / ``[1, C, T]``) -> ``[1, in_channels, T']`` ready for encode."""
        return self.preprocess_audio_list_for_encoder([audio], [in_sr])

    def preprocess_audio_list_for_encoder(self, audio_list: Sequence[torch.Tensor],
                                          in_sr_list: int | Sequence[int]) -> torch.Tensor:
        """Resample to the model rate, fix the channel count, right-pad with silence to the longest
        clip rounded up to a multiple of ``min_length``; returns ``[B, in_channels, T']``."""
        if isinstance(in_sr_list, int):
            in_sr_list = [in_sr_list] * len(audio_list)
        if len(in_sr_list) != len(audio_list):
            raise ValueError("in_sr_list must have one sample rate per audio clip")
        clips = []
        for audio, in_sr in zip(audio_list, in_sr_list, strict=True):
            if audio.dim() == 3 and audio.shape[0] == 1:
                audio = audio[0]
            elif audio.dim() == 1:
                audio = audio[None]
            if audio.dim() != 2:
                raise ValueError(f"expected audio shaped [channels, samples], got {tuple(audio.shape)}")
            clips.append(_set_channels(resample_tensor(audio, int(in_sr), self.sample_rate), self.in_channels))
        longest = max(c.shape[-1] for c in clips)
        target = longest + (-longest) % self.min_length
        return torch.stack([nn.functional.pad(c, (0, target - c.shape[-1])) for c in clips])
