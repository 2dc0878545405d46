"""Per-item audio transforms with upstream's semantics: pad/crop, channel conversion, phase flip, silence test,
long-pause removal and loudness normalisation (ITU-R BS.1770).

The central piece is :func:`read_padded_crop`: it reproduces upstream's "load the whole file,
resample it, then ``PadCrop_Normalized_T``" but reads only the crop window. The crop is planned
in model-rate samples from the header's length, mapped back to source frames on the resampler's
exact grid (multiples of ``in_sr / gcd``), read with a margin, resampled and cut. The result equals
the same window of the fully resampled file to float rounding (checked in the tests).

Randomness uses Python's global :mod:`random` (like upstream) unless an ``rng`` is passed:
torch's DataLoader re-seeds it in every worker, so workers draw different crops.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stable_audio_ops.data.audio_io import (
    AudioInfo,
    audio_info,
    read_audio_window,
    resample,
    resampled_length,
)

# Resampler margin, in samples of the lower of the two rates. soxr's HQ filter reaches ~100 such
# samples; 160 makes windowed resampling match whole-file resampling to float32 rounding.
RESAMPLE_MARGIN_LOW_RATE = 160


@dataclass(frozen=True)
class CropPlan:
    """Where a crop of ``n_samples`` lies in a source of ``length`` samples (both at the model rate).

    Properties give upstream's metadata: ``timestamps`` as fractions of ``max(length, n_samples)``,
    ``seconds_start = floor(offset / sr)`` and ``seconds_total = ceil(length / sr)`` (whole file).
    """

    offset: int
    length: int
    n_samples: int
    sample_rate: int

    @property
    def t_start(self) -> float:
        return self.offset / max(self.length, self.n_samples)

    @property
    def t_end(self) -> float:
        return (self.offset + self.n_samples) / max(self.length, self.n_samples)

    @property
    def seconds_start(self) -> int:
        return math.floor(self.offset / self.sample_rate)

    @property
    def seconds_total(self) -> int:
        return math.ceil(self.length / self.sample_rate)


def plan_crop(
    length: int, n_samples: int, sample_rate: int, randomize: bool = True, rng: random.Random | None = None
) -> CropPlan:
    """Choose the crop offset: uniform over every full window when ``randomize``, else 0.

    Upstream draws ``randint(0, upper_bound + 1)``, whose last value yields a window one sample past
    the end (a zero sample marked as real in the padding mask); here the last offset is
    ``length - n_samples``, so every full-length crop is all real audio.
    """
    upper = max(0, length - n_samples)
    offset = 0
    if randomize and upper > 0:
        offset = (rng or random).randint(0, upper)
    return CropPlan(offset=offset, length=length, n_samples=n_samples, sample_rate=sample_rate)


def padding_mask_for(real: int, n_samples: int) -> torch.Tensor:
    """Float mask ``[n_samples]``: 1 over the first ``real`` samples (audio), 0 over the padding."""
    mask = torch.zeros(n_samples)
    mask[: max(0, min(real, n_samples))] = 1.0
    return mask


def pad_crop(
    audio: torch.Tensor, n_samples: int, sample_rate: int, randomize: bool = True, rng: random.Random | None = None
) -> tuple[torch.Tensor, float, float, int, int, torch.Tensor]:
    """Upstream ``PadCrop_Normalized_T`` on an in-memory ``[C, L]`` tensor.

    Returns ``(chunk [C, n_samples], t_start, t_end, seconds_start, seconds_total, padding_mask)``;
    short audio is zero-padded at the end and the mask marks the real part.
    """
    plan = plan_crop(audio.shape[-1], n_samples, sample_rate, randomize, rng)
    chunk = audio.new_zeros(audio.shape[:-1] + (n_samples,))
    piece = audio[..., plan.offset : plan.offset + n_samples]
    chunk[..., : piece.shape[-1]] = piece
    mask = padding_mask_for(piece.shape[-1], n_samples)
    return chunk, plan.t_start, plan.t_end, plan.seconds_start, plan.seconds_total, mask


def read_padded_crop(
    path: str | os.PathLike[str],
    n_samples: int,
    sample_rate: int,
    randomize: bool = True,
    info: AudioInfo | None = None,
    rng: random.Random | None = None,
) -> tuple[torch.Tensor, CropPlan, torch.Tensor]:
    """Read a pad/cropped window of ``path`` at ``sample_rate`` without decoding the whole file.

    Returns ``(chunk [C, n_samples] float32, plan, padding_mask [n_samples])``. The mask counts the
    samples actually decoded, so a file whose header overstates its length gets an honest mask.
    Raises ``EOFError`` when the window holds no audio at all (e.g. a truncated file).
    """
    info = info if info is not None else audio_info(path)
    in_sr = info.sample_rate
    length = resampled_length(info.frames, in_sr, sample_rate)
    plan = plan_crop(length, n_samples, sample_rate, randomize, rng)
    want = min(n_samples, length - plan.offset)

    if in_sr == sample_rate:
        window = read_audio_window(path, plan.offset, want)
        piece = window
    else:
        # Source frames src0 map exactly onto output sample out0 when src0 is a multiple of in_sr/g.
        g = math.gcd(in_sr, sample_rate)
        step_in, step_out = in_sr // g, sample_rate // g
        margin = math.ceil(RESAMPLE_MARGIN_LOW_RATE * in_sr / min(in_sr, sample_rate))
        first = plan.offset * in_sr / sample_rate - margin
        block = max(0, math.floor(first / step_in))
        src0, out0 = block * step_in, block * step_out
        src1 = min(info.frames, math.ceil((plan.offset + want) * in_sr / sample_rate) + margin)
        window = read_audio_window(path, src0, max(0, src1 - src0))
        resampled = resample(window, in_sr, sample_rate)
        k = plan.offset - out0
        piece = resampled[:, k : k + want]

    real = piece.shape[-1]
    if real == 0:
        raise EOFError(f"no audio decoded at sample {plan.offset} of {length} (file shorter than its header says?)")
    chunk = torch.zeros(piece.shape[0], n_samples, dtype=torch.float32)
    chunk[:, :real] = torch.from_numpy(np.ascontiguousarray(piece))
    return chunk, plan, padding_mask_for(real, n_samples)


def set_audio_channels(audio: torch.Tensor, channels: str | int) -> torch.Tensor:
    """Upstream's channel policy: ``"mono"``/1 = mean over channels; ``"stereo"``/2 = duplicate mono,
    keep the first two of more. Accepts ``[C, n]`` or ``[n]`` audio."""
    if channels in ("mono", 1):
        return audio.mean(dim=0, keepdim=True) if audio.dim() > 1 else audio
    if channels in ("stereo", 2):
        if audio.dim() == 1:
            return audio.unsqueeze(0).repeat(2, 1)
        if audio.shape[0] == 1:
            return audio.repeat(2, 1)
        return audio[:2]
    raise ValueError(f"unknown channel setting {channels!r}; known: mono, stereo, 1, 2")


def crop_extra_audio(
    extra: dict[str, Any],
    n_samples: int,
    sample_rate: int,
    channels: str | int,
    randomize: bool = True,
    clamp: bool = False,
    rng: random.Random | None = None,
) -> dict[str, torch.Tensor]:
    """The ``__audio__`` entries a custom metadata module returned, made to match the main audio.

    Each value is pad/cropped to ``n_samples`` (its own crop, like upstream) and channel-converted;
    ``clamp`` first limits it to [-1, 1] for datasets that clamp their main audio too.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in extra.items():
        chunk = pad_crop(torch.as_tensor(value, dtype=torch.float32), n_samples, sample_rate, randomize, rng)[0]
        out[key] = set_audio_channels(chunk.clamp(-1, 1) if clamp else chunk, channels)
    return out


def phase_flip(audio: torch.Tensor, p: float = 0.5, rng: random.Random | None = None) -> torch.Tensor:
    """Invert the polarity with probability ``p`` (upstream's PhaseFlipper augmentation)."""
    return -audio if (rng or random).random() < p else audio


def peak_dbfs(audio: Any) -> float:
    """Peak level in dBFS (``-inf`` for digital silence)."""
    tensor = torch.as_tensor(audio)
    peak = float(tensor.abs().max()) if tensor.numel() else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else float("-inf")


def is_silence(audio: Any, threshold_db: float = -60.0) -> bool:
    """True when the whole clip peaks below ``threshold_db`` (upstream: -60 dBFS)."""
    return peak_dbfs(audio) < threshold_db


# ------------------------------------------------------------------ silence removal and loudness
def remove_long_silence(
    audio: torch.Tensor,
    sample_rate: int,
    silence_threshold: Sequence[float] = (0.01, 0.5),
    max_silence_duration: float = 0.25,
    rng: random.Random | None = None,
) -> torch.Tensor:
    """Shorten long pauses in mono audio ``[1, T]`` (upstream's ``remove_silence``).

    A run of samples with ``|x| < silence_threshold[0]`` longer than ``max_silence_duration`` seconds is
    replaced by a random piece of itself ``silence_threshold[1]`` seconds long (all of it when shorter).
    """
    level, keep_seconds = float(silence_threshold[0]), float(silence_threshold[1])
    max_run = int(max_silence_duration * sample_rate)
    keep = int(keep_seconds * sample_rate)
    x = audio.reshape(-1)
    quiet = (x.abs() < level).to(torch.int8)
    if not bool(quiet.any()):
        return x.unsqueeze(0)
    edges = torch.diff(torch.cat([torch.zeros(1, dtype=torch.int8), quiet, torch.zeros(1, dtype=torch.int8)]))
    starts = torch.nonzero(edges == 1).flatten().tolist()
    ends = torch.nonzero(edges == -1).flatten().tolist()
    pieces, prev = [], 0
    for start, end in zip(starts, ends, strict=True):
        if end - start <= max_run:
            continue
        pieces.append(x[prev:start])
        offset = start + (rng or random).randint(0, end - start - keep) if end - start > keep else start
        pieces.append(x[offset : offset + keep])
        prev = end
    pieces.append(x[prev:])
    return torch.cat(pieces).unsqueeze(0)


def _biquad_k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770 K-weighting as two RBJ biquads (+4 dB shelf at 1500 Hz, high-pass at 38 Hz), like torchaudio."""
    w0 = 2 * math.pi * 1500.0 / sample_rate
    gain = 10 ** (4.0 / 40)
    alpha = math.sin(w0) / (2 * (1 / math.sqrt(2)))
    cos, sq = math.cos(w0), 2 * math.sqrt(gain) * alpha
    shelf_b = np.array(
        [
            gain * ((gain + 1) + (gain - 1) * cos + sq),
            -2 * gain * ((gain - 1) + (gain + 1) * cos),
            gain * ((gain + 1) + (gain - 1) * cos - sq),
        ]
    )
    shelf_a = np.array([(gain + 1) - (gain - 1) * cos + sq, 2 * ((gain - 1) - (gain + 1) * cos),
                        (gain + 1) - (gain - 1) * cos - sq])
    w0 = 2 * math.pi * 38.0 / sample_rate
    alpha, cos = math.sin(w0) / (2 * 0.5), math.cos(w0)
    hp_b = np.array([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2])
    hp_a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return [(shelf_b / shelf_a[0], shelf_a / shelf_a[0]), (hp_b / hp_a[0], hp_a / hp_a[0])]


def integrated_loudness(audio: np.ndarray | torch.Tensor, sample_rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness (LUFS) of ``[C, n]`` audio; ``-inf`` when no 400 ms block passes."""
    from scipy.signal import lfilter

    x = np.asarray(audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    for b, a in _biquad_k_weighting(sample_rate):
        x = lfilter(b, a, x, axis=-1)
    block, step = int(round(0.4 * sample_rate)), int(round(0.1 * sample_rate))
    if x.shape[-1] < block:
        return float("-inf")
    n_blocks = 1 + (x.shape[-1] - block) // step
    power = np.stack([np.mean(x[:, i * step : i * step + block] ** 2, axis=-1) for i in range(n_blocks)], axis=1)
    weights = np.array([1.41 if c in (3, 4) else 1.0 for c in range(x.shape[0])])[:, None]
    summed = np.sum(weights * power, axis=0)
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(summed)
    kept = summed[block_lufs > -70.0]
    if kept.size == 0:
        return float("-inf")
    relative_gate = -0.691 + 10 * math.log10(float(np.mean(kept))) - 10.0
    kept = summed[(block_lufs > -70.0) & (block_lufs > relative_gate)]
    if kept.size == 0:
        return float("-inf")
    return float(-0.691 + 10 * math.log10(float(np.mean(kept))))


def volume_normalize(
    audio: torch.Tensor,
    sample_rate: int,
    target_lufs: float = -16.0,
    gain_range_db: float = 2.0,
    rng: random.Random | None = None,
    energy_threshold: float = 1e-6,
) -> torch.Tensor:
    """Upstream's ``VolumeNorm``: scale to ``target_lufs`` +- a random ``gain_range_db``, declip to 0.95 peak."""
    if float(torch.mean(audio**2)) < energy_threshold:
        return audio
    loudness = integrated_loudness(audio, sample_rate)
    if not math.isfinite(loudness):
        return audio
    target = target_lufs + (rng or random).uniform(-gain_range_db, gain_range_db)
    out = audio * float(10 ** ((target - loudness) / 20))
    peak = float(out.abs().max())
    if peak >= 1.0:
        out = out / peak * 0.95
    return out
