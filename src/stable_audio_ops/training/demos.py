"""Demo reconstructions during autoencoder training, logged as MLflow artifacts.

Every ``demo_every`` steps the callback reconstructs ONE FIXED batch (taken once, before training,
from a separate loader, so the training iterator is never touched and successive demos are
comparable) with the EMA model when there is one, and logs under ``demos/step_<global step>/``:
- ``recon.wav``: real and reconstruction interleaved (real 1, recon 1, real 2, ...), 16-bit PCM,
  clamped to [-1, 1] (not normalised, so level errors stay audible);
- ``recon_spectrogram.png``: log-magnitude spectrogram of the first channel of that file, each clip
  labelled ``real: <prompt>`` / ``reconstruction: <prompt>`` (the file name when there is no prompt).

Timing: like upstream, a demo fires right after the first optimizer step (global step 1) and then
whenever ``(global_step - 1) % demo_every == 0``; in addition one fires when training ends (unless the
last step already had one), so a short run always ends with a demo of its final weights.
Rank 0 only; a no-op without an MLflow logger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from stable_audio_ops.training.autoencoder import trim_to_shortest
from stable_audio_ops.training.demo_schedule import ScheduledDemo
from stable_audio_ops.training.spectrogram import write_spectrogram_png


def interleave(reals: torch.Tensor, fakes: torch.Tensor) -> torch.Tensor:
    """``[B, C, T]`` x2 -> ``[C, 2 * B * T]``: real 1, fake 1, real 2, fake 2, ..."""
    pairs = torch.stack([reals, fakes], dim=1)  # [B, 2, C, T]
    b, two, c, t = pairs.shape
    return pairs.permute(2, 0, 1, 3).reshape(c, b * two * t)


def write_wav_int16(path: Path, audio: torch.Tensor, sample_rate: int) -> None:
    """``[C, T]`` float -> 16-bit PCM WAV (clamped)."""
    import soundfile as sf

    pcm = (audio.detach().float().clamp(-1, 1) * 32767).round().to(torch.int16).cpu().numpy().T
    sf.write(str(path), np.ascontiguousarray(pcm), sample_rate, subtype="PCM_16")


def clip_label(metadata: Mapping[str, Any]) -> str:
    """What a person calls a clip: its prompt or caption (the demo notes say instrument, note and velocity),
    else its file name; empty when the metadata holds none of them."""
    for key in ("prompt", "caption", "relpath", "path"):
        if metadata.get(key):
            return str(metadata[key])
    return ""


def write_demo_audio(
    wav_path: Path, png_path: Path, audio: torch.Tensor, sample_rate: int, title: str, n_items: int, **png_style: Any
) -> None:
    """One demo as a 16-bit WAV plus the spectrogram PNG of the same audio (``png_style``: see
    :func:`~stable_audio_ops.training.spectrogram.write_spectrogram_png`), so every demo callback logs the same
    pair of files."""
    write_wav_int16(wav_path, audio, sample_rate)
    write_spectrogram_png(png_path, audio, sample_rate, title, n_items, **png_style)


class AutoencoderDemoCallback(ScheduledDemo):
    """Reconstruct ``demo_audio`` every ``demo_every`` steps and log WAV + PNG to MLflow."""

    temp_prefix = "sao-demo-"

    def __init__(self, demo_audio: torch.Tensor, demo_every: int = 2000, sample_rate: int = 44100, max_demos: int = 8,
                 demo_metadata: Sequence[Mapping[str, Any]] | None = None):
        super().__init__()
        if demo_every < 1:
            raise ValueError(f"demo_every must be >= 1, got {demo_every}")
        self.demo_audio = demo_audio[:max_demos].detach().cpu()
        # which clip each one is (prompt / caption / file), written above its real and reconstruction
        self.demo_names = [clip_label(md) for md in list(demo_metadata or [])[: self.demo_audio.shape[0]]]
        self.demo_every = int(demo_every)
        self.sample_rate = int(sample_rate)

    def item_labels(self, n_clips: int) -> list[str]:
        """``real: <clip>``, ``reconstruction: <clip>`` for each clip, in the order the demo interleaves them."""
        names = self.demo_names if len(self.demo_names) == n_clips else [""] * n_clips
        return [f"{kind}{': ' + name if name else ''}" for name in names for kind in ("real", "reconstruction")]

    @torch.no_grad()
    def reconstruct(self, pl_module) -> tuple[torch.Tensor, torch.Tensor]:
        model = pl_module.inference_model()
        reals = self.demo_audio.to(pl_module.device)
        encoder_input = reals
        if getattr(pl_module, "force_input_mono", False) and reals.shape[1] > 1:
            encoder_input = reals.mean(dim=1, keepdim=True)
        fakes = model.decode(model.encode(encoder_input))
        fakes, reals = trim_to_shortest(fakes.float(), reals.float())
        return reals, fakes

    def write_demo(self, trainer: pl.Trainer, pl_module, folder: Path) -> None:
        reals, fakes = self.reconstruct(pl_module)
        write_demo_audio(folder / "recon.wav", folder / "recon_spectrogram.png", interleave(reals, fakes),
                         self.sample_rate, f"autoencoder reconstructions at step {trainer.global_step}",
                         n_items=2 * reals.shape[0], item_labels=self.item_labels(reals.shape[0]))
