"""Judge a trained ``lm`` model: token perplexity on held-out clips and sanity of the clips it generates.

Why perplexity on held-out audio: the LM's training loss is measured on the clips it learns from; tokenizing
the test split with the model's own (frozen) tokenizer and scoring those codes teacher-forced says whether it
learned the token statistics of the notes or only memorised its training clips. The reference point is
``log(codebook_size)``, the cross-entropy of a uniform guess: an LM that learned anything is below it.

The cross-entropy here is token-weighted (every scored code counts once, across batches), per codebook and then
averaged over codebooks as training reports it, without CFG dropout; codes the codebook pattern cannot predict
and padded frames are not scored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stable_audio_ops.config.dataset_config import AudioDirConfig, DatasetConfig
from stable_audio_ops.data.dataloader import create_dataloader_from_config
from stable_audio_ops.evaluation.pitched import unconditional_report_table
from stable_audio_ops.inference.pre_encode import latent_padding_mask

# a generated clip is "silent" below this RMS (about -60 dBFS)
SILENCE_RMS = 1e-3


def _frame_mask(metadata: Sequence[Mapping[str, Any]], frames: int) -> torch.Tensor:
    """``[B, frames]`` bool: real (not padded) code frames, from the items' audio-rate padding masks."""
    return torch.tensor([latent_padding_mask(md.get("padding_mask"), frames) for md in metadata], dtype=torch.bool)


@torch.no_grad()
def heldout_token_perplexity(model: torch.nn.Module, dataset_config: DatasetConfig, *, sample_size: int,
                             batch_size: int, num_workers: int = 0, seed: int = 0) -> dict[str, Any]:
    """Teacher-forced cross-entropy (nats) and perplexity of ``model`` on the codes of every clip of
    ``dataset_config`` (whole clips from their start, padded/cropped to ``sample_size``): ``cross_entropy``,
    ``perplexity``, per codebook ``cross_entropy_q{k}``, ``tokens`` scored, ``clips``, and the uniform
    reference ``uniform_cross_entropy`` = log(codebook_size). The audio_dir loader flips polarity at random as
    upstream's does for training; ``seed`` makes those flips (and so the score) the same on every run."""
    if isinstance(dataset_config, AudioDirConfig):
        dataset_config = dataclasses.replace(dataset_config, random_crop=False, drop_last=False)
    loader = create_dataloader_from_config(dataset_config, batch_size=batch_size, sample_size=sample_size,
                                           sample_rate=int(model.sample_rate),
                                           audio_channels=int(getattr(model.pretransform, "io_channels", 1)),
                                           num_workers=num_workers, shuffle=False, seed=seed)
    model.eval()
    k = int(model.num_quantizers)
    nll, counts, clips = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64), 0
    for audio, metadata, *_ in loader:
        codes = model.tokenize(audio)
        cond = model.conditioner(metadata, audio.device) if model.conditioner is not None else None
        out = model.compute_logits(codes, condition_tensors=cond, cfg_dropout_prob=0.0)
        mask = out.mask & _frame_mask(metadata, codes.shape[-1])[:, None, :]
        for q in range(k):
            keep = mask[:, q]
            nll[q] += F.cross_entropy(out.logits[:, q][keep].float(), codes[:, q][keep], reduction="sum").double()
            counts[q] += keep.sum()
        clips += audio.shape[0]
    if clips == 0 or bool((counts == 0).any()):
        raise ValueError("no held-out codes to score (is the test dataset empty, or shorter than one code frame?)")
    per_codebook = (nll / counts).tolist()
    ce = float(np.mean(per_codebook))
    return {"cross_entropy": ce, "perplexity": math.exp(ce),
            **{f"cross_entropy_q{q + 1}": v for q, v in enumerate(per_codebook)},
            "uniform_cross_entropy": math.log(int(model.codebook_size)), "codebook_size": int(model.codebook_size),
            "tokens": int(counts.sum()), "clips": clips}


def clip_checks(audio: torch.Tensor, silence_rms: float = SILENCE_RMS) -> list[dict[str, Any]]:
    """Per generated clip ``[B, C, T]``: ``finite`` (no NaN/inf), ``rms``, ``peak`` and ``silent`` (RMS below
    ``silence_rms``): what a broken tokenizer or sampler shows first."""
    rows = []
    for clip in audio.float():
        finite = bool(torch.isfinite(clip).all())
        values = torch.nan_to_num(clip)
        rms = float(values.pow(2).mean().sqrt())
        rows.append({"finite": finite, "rms": rms, "peak": float(values.abs().max()), "silent": rms < silence_rms})
    return rows


def lm_report(perplexity: Mapping[str, Any], clips: Sequence[Mapping[str, Any]],
              generation: Mapping[str, Any], pitched: Mapping[str, Any] | None = None) -> str:
    """The Markdown report: held-out perplexity against the uniform reference, the generated clips' checks and,
    with ``pitched`` (``{"results", "midi_range", "cents"}``, :func:`.pitched.judge_unconditional`), whether they
    decode to notes."""
    ce, uniform = perplexity["cross_entropy"], perplexity["uniform_cross_entropy"]
    ok = all(c["finite"] and not c["silent"] for c in clips)
    lines = [
        "# lm report", "",
        f"## Held-out token perplexity ({perplexity['clips']} test clips, {perplexity['tokens']} codes)", "",
        "| | cross-entropy (nats) | perplexity |", "|---|---|---|",
        f"| lm | {ce:.3f} | {perplexity['perplexity']:.2f} |",
        f"| uniform (log {perplexity['codebook_size']}) | {uniform:.3f} | {math.exp(uniform):.0f} |", "",
        "Per codebook: " + ", ".join(f"q{q}: {perplexity[f'cross_entropy_q{q}']:.3f}"
                                     for q in range(1, 1 + sum(k.startswith("cross_entropy_q") for k in perplexity))),
        "",
        f"{'Below' if ce < uniform else 'NOT below'} the uniform guess by {uniform - ce:.3f} nats per code.", "",
        f"## Generated clips ({len(clips)}: {generation.get('seconds', '?')} s, temperature "
        f"{generation.get('temperature')}, top-k {generation.get('top_k')}, seed {generation.get('seed')})", "",
        "| clip | finite | silent | RMS | peak |", "|---|---|---|---|---|",
        *(f"| {i} | {c['finite']} | {c['silent']} | {c['rms']:.4f} | {c['peak']:.3f} |" for i, c in enumerate(clips)),
        "", f"All clips finite and non-silent: {'yes' if ok else 'NO'}.", "",
    ]
    if pitched is not None:
        low, high = pitched["midi_range"]
        lines += ["## Do the generated tokens decode to notes?", "",
                  unconditional_report_table(pitched["results"]),
                  f"pitched_acc_<judge>: share of clips whose f0 (ACF / CREPE-tiny) lies within ±{pitched['cents']:g} "
                  f"cents of an equal-tempered note in MIDI {low}..{high}; real test clips are the ceiling, "
                  "RMS-matched white noise the floor.", ""]
    return "\n".join(lines)


__all__ = ["SILENCE_RMS", "clip_checks", "heldout_token_perplexity", "lm_report"]
