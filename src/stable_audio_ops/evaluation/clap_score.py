"""CLAP score: how well clips match their captions, judged by a trained ``clap`` model (issue 11).

Why: the probe judges (``inst_acc``, pitch) only check the caption parts they were built for; a CLAP trained on
the captions themselves scores the whole caption. Two numbers per set of ``(audio, caption)`` pairs:

- ``clap_score``: the mean cosine similarity of each clip's audio embedding and its own caption's text
  embedding (in [-1, 1]; higher = closer to its caption);
- ``clap_r1``: text->audio retrieval at rank 1 over the set: for each caption, is the best-matching clip one
  that carries this caption? Clips sharing a caption count as right; a tie between a right and a wrong clip
  counts as wrong (collapsed embeddings score 0, not 1). Chance is about ``1 / distinct captions``.

Both depend on the set (R@1 on its size and on how alike its captions are), so compare sets of the same
captions only: real vs reconstructed vs generated notes of the same held-out clips, as the evaluation does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stable_audio_ops.evaluation._audio import resample_mono
from stable_audio_ops.models.loading import load_local_model

# (audio, sample_rate, metadata with "prompt" or "caption"), as the judges' LabelledClip
CaptionedClip = tuple[Any, int, Mapping[str, Any]]


@dataclass
class ClapJudge:
    """An unwrapped ``clap`` model with what its audio branch expects: rate, length (crop / zero-pad), channels."""

    model: torch.nn.Module
    sample_rate: int
    sample_size: int
    channels: int
    device: torch.device
    batch_size: int = 32


def load_clap_judge(path: str | Path, device: str | torch.device = "cpu", batch_size: int = 32) -> ClapJudge:
    """The clap model of an unwrapped file (config embedded) or model folder; any other model type is an error
    naming its config. Its config's ``sample_rate`` / ``sample_size`` / ``audio_channels`` say how clips are fed."""
    loaded = load_local_model(path, device=device, model_types=("clap",), purpose="a CLAP-score judge")
    config = loaded.config
    if getattr(loaded.model, "pretransform", None) is None:
        raise ValueError(f"{path}: this clap model has no pretransform, so it cannot embed audio (the judge feeds "
                         "it waveforms)")
    return ClapJudge(loaded.model, int(config["sample_rate"]), int(config["sample_size"]),
                     int(config.get("audio_channels", 1)), loaded.device, batch_size)


def clip_caption(meta: Mapping[str, Any], index: int) -> str:
    """A clip's ``prompt`` (else ``caption``); an error naming the clip when it has neither."""
    text = meta.get("prompt") or meta.get("caption")
    if not isinstance(text, str) or not text:
        raise ValueError(f"CLAP score: clip {index} has no 'prompt' or 'caption' (keys: {', '.join(sorted(meta))})")
    return text


def _audio_batch(judge: ClapJudge, clips: Sequence[tuple[Any, int]]) -> torch.Tensor:
    """Mono clips at the judge's rate, cropped / zero-padded to its ``sample_size``, as ``[B, channels, n]``."""
    out = np.zeros((len(clips), judge.sample_size), dtype=np.float32)
    for i, (audio, sr) in enumerate(clips):
        mono = resample_mono(audio, int(sr), judge.sample_rate)[: judge.sample_size]
        out[i, : mono.shape[0]] = mono
    return torch.from_numpy(out)[:, None].expand(-1, judge.channels, -1).contiguous()


@torch.no_grad()
def clap_embeddings(judge: ClapJudge, clips: Sequence[tuple[Any, int]],
                    captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit audio and text embeddings ``[N, D]`` of ``(audio, sample_rate)`` clips and their captions."""
    if len(clips) != len(captions):
        raise ValueError(f"CLAP score: {len(clips)} clips but {len(captions)} captions")
    model, audio_parts, text_parts = judge.model, [], []
    for start in range(0, len(clips), judge.batch_size):
        audio = _audio_batch(judge, clips[start : start + judge.batch_size]).to(judge.device)
        audio_parts.append(model.get_audio_embedding(model.get_audio_features(audio).float()).cpu())
        text_parts.append(model.get_text_embedding(list(captions[start : start + judge.batch_size])).cpu())
    return torch.cat(audio_parts), torch.cat(text_parts)


def clap_metrics(audio: torch.Tensor, text: torch.Tensor, captions: Sequence[str]) -> dict[str, float]:
    """``clap_score`` and ``clap_r1`` of unit embeddings (row ``i`` of both belongs to ``captions[i]``)."""
    audio, text = audio.float(), text.float()
    score = float((audio * text).sum(dim=-1).mean())
    names = {c: k for k, c in enumerate(dict.fromkeys(captions))}
    ids = torch.tensor([names[c] for c in captions])
    same = ids[:, None] == ids[None, :]  # [caption i, clip j]: clip j carries caption i
    sims = text @ audio.T
    best_right = sims.masked_fill(~same, float("-inf")).amax(dim=1)
    best_wrong = sims.masked_fill(same, float("-inf")).amax(dim=1)
    return {"clap_score": score, "clap_r1": float((best_right > best_wrong).float().mean())}


def judge_clap(judge: ClapJudge, clips: Sequence[CaptionedClip]) -> dict[str, float]:
    """``clap_score`` / ``clap_r1`` of clips against the captions in their metadata (see the module doc)."""
    if not clips:
        raise ValueError("CLAP score: no clips")
    captions = [clip_caption(meta, i) for i, (_, _, meta) in enumerate(clips)]
    audio, text = clap_embeddings(judge, [(a, sr) for a, sr, _ in clips], captions)
    return clap_metrics(audio, text, captions)


__all__ = ["CaptionedClip", "ClapJudge", "clap_embeddings", "clap_metrics", "clip_caption", "judge_clap",
           "load_clap_judge"]
