"""Judge a caption-conditioned generator: generate one note per held-out test caption and judge the notes
beside real clips (ceiling) and noise (floor).

Why here and not in the pipeline: the generation loop (deterministic seeds per batch, lengths rounded up
to the model's minimum input length and cut back to the real clips') decides what the numbers mean, so it
belongs with the judges, testable without Kedro.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from stable_audio_ops.evaluation.examples import comparison_examples
from stable_audio_ops.evaluation.judge import (
    JudgeReference,
    LabelledClip,
    calibration_sets,
    format_report,
    judge_sets,
)
from stable_audio_ops.evaluation.selection import subsample
from stable_audio_ops.inference.entry import generate

log = logging.getLogger(__name__)

CAPTION_FIELDS = ("prompt", "caption", "velocity", "family", "note_name")


def caption_targets(clips: Sequence[LabelledClip]) -> list[dict[str, Any]]:
    """What to generate for each clip: its note (``midi``, ``instrument``, ``dynamic``) and caption fields."""
    return [{"midi": m["midi"], "instrument": m["instrument"], "dynamic": m["dynamic"],
             **{k: m[k] for k in CAPTION_FIELDS if k in m}} for _, _, m in clips]


def conditioning(meta: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """Metadata for the conditioners: every caption field, plus the prompt and the timing ids."""
    prompt = meta.get("prompt") or meta.get("caption") or ""
    return {**dict(meta), "prompt": prompt, "seconds_start": 0.0, "seconds_total": float(seconds)}


def generate_for_captions(model: torch.nn.Module, targets: Sequence[Mapping[str, Any]], *, clip_samples: int,
                          steps: int, cfg_scale: float, batch_size: int, seed: int, sampler: str | None = None,
                          device: str | torch.device = "cpu", model_type: str = "diffusion_cond") -> list[np.ndarray]:
    """One mono clip per target caption, ``clip_samples`` long at the model's rate (batch ``k`` uses seed
    ``seed + k * batch_size``, so a run is repeatable)."""
    min_length = int(getattr(model, "min_input_length", 1) or 1)
    sample_size = math.ceil(clip_samples / min_length) * min_length
    seconds = clip_samples / float(model.sample_rate)
    extra = {"sampler_type": sampler} if sampler else {}
    out: list[np.ndarray] = []
    for start in range(0, len(targets), batch_size):
        chunk = targets[start : start + batch_size]
        with torch.inference_mode():
            audio = generate(model, model_type, steps=steps, cfg_scale=cfg_scale,
                             conditioning=[conditioning(t, seconds) for t in chunk], batch_size=len(chunk),
                             sample_size=sample_size, seed=seed + start, device=device, progress=False, **extra)
        audio = audio.float().cpu().numpy()[:, :, :clip_samples]
        out.extend(item.mean(axis=0).astype(np.float32) for item in audio)
    return out


def evaluate_generator(model: torch.nn.Module, heldout: Sequence[LabelledClip], reference: JudgeReference, *,
                       num_captions: int | None, steps: int, cfg_scale: float, batch_size: int, seed: int,
                       sampler: str | None, calibration: Sequence[str], judge_options: Mapping[str, Any],
                       example_count: int, device: str | torch.device = "cpu",
                       model_type: str = "diffusion_cond") -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Generate for the first ``num_captions`` held-out captions (round-robin over instruments), as long as
    the real clips, and judge them beside the ``calibration`` sets built from the same clips.

    Returns the per-set judge results (``model`` holds ``generation_seconds`` too) and the first
    ``example_count`` (real, generated) pairs for the figures: the same first captions as the autoencoder's.
    """
    chosen = subsample(heldout, num_captions)
    targets = caption_targets(chosen)
    model_sr = int(model.sample_rate)
    real_sr = int(chosen[0][1])
    clip_samples = round(len(chosen[0][0]) * model_sr / real_sr)
    started = time.perf_counter()
    generated = generate_for_captions(model, targets, clip_samples=clip_samples, steps=int(steps),
                                      cfg_scale=float(cfg_scale), batch_size=int(batch_size), seed=int(seed),
                                      sampler=sampler, device=device, model_type=model_type)
    gen_seconds = time.perf_counter() - started
    sets = {"model": [(audio, model_sr, t) for audio, t in zip(generated, targets, strict=True)]}
    sets.update(calibration_sets(chosen, kinds=tuple(calibration), seed=int(seed)))
    results = judge_sets(sets, reference, **judge_options)
    results["model"]["generation_seconds"] = gen_seconds
    log.info("generation judges:\n%s", format_report(results))
    return results, comparison_examples(chosen, generated, model_sr, "generated", example_count)


__all__ = ["caption_targets", "conditioning", "evaluate_generator", "generate_for_captions"]
