"""Judge an autoencoder on held-out clips: distances to the input, input dependence, and the generation
judges applied to its reconstructions.

Why the generation judges too: a reconstruction is what the generator will be decoded through, so it is
judged as if it had been generated for the clip's caption (``pitch_acc_crepe``, ``inst_acc``, ``kid``, ...)
and the promotion floors of both models read one scale. Input dependence catches the failure the
distances miss: an autoencoder that outputs the same note whatever it is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from stable_audio_ops.evaluation._audio import to_mono
from stable_audio_ops.evaluation.examples import comparison_examples
from stable_audio_ops.evaluation.input_dependence import reconstruction_input_dependence
from stable_audio_ops.evaluation.judge import JudgeReference, LabelledClip, judge_sets
from stable_audio_ops.evaluation.reconstruction import reconstruct_clips, score_reconstructions
from stable_audio_ops.evaluation.selection import subsample

log = logging.getLogger(__name__)

DEPENDENCE_KEYS = ("match_accuracy", "clip_match_accuracy", "mean_pair_correlation", "reference_pair_correlation",
                   "collapsed")


def input_dependence_metrics(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray], sample_rate: int,
                             metas: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """match_accuracy (own note: same instrument and pitch), the strict own-clip rate, pair correlations and
    collapsed (0/1) as metrics. Fewer than 2 clips cannot tell: match_accuracy is NaN (it fails its floor)."""
    if len(outputs) < 2:
        return {"match_accuracy": float("nan")}
    notes = [f"{m.get('instrument')}|{m.get('midi')}" for m in metas]
    found = reconstruction_input_dependence(outputs, inputs, sample_rate, groups=notes)
    return {**{k: float(found[k]) for k in DEPENDENCE_KEYS}, "match_groups": float(found["groups"])}


def evaluate_autoencoder(model: torch.nn.Module, heldout: Sequence[LabelledClip], reference: JudgeReference, *,
                         max_clips: int | None, batch_size: int, judge_options: Mapping[str, Any],
                         example_count: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Reconstruct the first ``max_clips`` held-out clips (round-robin over instruments) and judge them;
    returns (metrics, the first ``example_count`` (real, reconstruction) pairs for the figures).

    ``judge_options`` are :func:`~stable_audio_ops.evaluation.judge.judge_sets`' keyword arguments, the same
    as the generator is judged with. Metrics: multi-resolution STFT, log-mel and SI-SDR distances; input
    dependence (``match_accuracy``, ``collapsed``, ...); the generation judges; ``seconds`` taken.
    """
    chosen = subsample(heldout, max_clips)
    rates = {sr for _, sr, _ in chosen}
    if len(rates) != 1:
        raise ValueError(f"evaluate_autoencoder: held-out clips have mixed sample rates {sorted(rates)}")
    clip_sr = rates.pop()
    model_sr = int(getattr(model, "sample_rate", clip_sr))
    started = time.perf_counter()
    pairs = reconstruct_clips(model, [audio for audio, _, _ in chosen], clip_sr, batch_size=int(batch_size))
    metrics = score_reconstructions(pairs, model_sr)
    inputs, outputs = [to_mono(ref) for ref, _ in pairs], [to_mono(est) for _, est in pairs]
    metrics.update(input_dependence_metrics(outputs, inputs, model_sr, [meta for _, _, meta in chosen]))
    judged = judge_sets({"reconstruction": [(out, model_sr, meta) for out, (_, _, meta) in
                                            zip(outputs, chosen, strict=True)]},
                        reference, **judge_options)["reconstruction"]
    metrics.update({k: v for k, v in judged.items() if k != "n"})
    metrics["seconds"] = time.perf_counter() - started
    log.info("autoencoder reconstruction: %s", {k: round(float(v), 4) for k, v in metrics.items()})
    return metrics, comparison_examples(chosen, outputs, model_sr, "reconstruction", example_count)


__all__ = ["evaluate_autoencoder", "input_dependence_metrics"]
