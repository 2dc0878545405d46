"""``generate_lm``: sample codes from an ``lm`` model step by step along its codebook pattern, then decode them.

Semantics follow stable-audio-tools 0.0.20's ``AudioLanguageModelWrapper.generate`` / ``generate_audio``
(which cannot run at 0.0.20, see :mod:`stable_audio_ops.models.lm`): the codes to generate start unknown,
the pattern sequence is filled one step at a time from the logits of the last position (positions the
pattern leaves empty get the special token), classifier-free guidance mixes conditioned and null-conditioned
logits, and the result is reverted to codes ``[B, K, max_gen_len]`` and decoded with the pretransform's
``decode_tokens``. Sampling: ``temperature <= 0`` is greedy; otherwise ``top_p > 0`` samples from the
nucleus, else ``top_k > 0`` from the ``top_k`` most likely codes, else from the full softmax (upstream's
precedence and defaults: temperature 1, top_k 250, top_p 0).

Additions: draws come from a ``torch.Generator`` seeded with ``seed`` (``-1`` = random, logged), so a seed
gives the same codes; ``init_codes`` continue given codes (upstream's ``init_data``). There is no key/value
cache: each step runs the model over the whole prefix (``O(steps^2)``; fine for short clips).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from stable_audio_ops.models.lm import AudioLanguageModelWrapper

log = logging.getLogger(__name__)

UNKNOWN = -1  # a code not generated yet


@dataclass
class LMGeneration:
    """Generated codes ``[B, K, T]`` (the LM's layout), the pretransform's tokens (its own layout, what
    ``decode_tokens`` takes) and the decoded audio ``[B, C, T * downsampling_ratio]`` (``None`` when not
    decoded), plus the seed used."""

    codes: torch.Tensor
    tokens: torch.Tensor
    audio: torch.Tensor | None
    seed: int


def resolve_seed(seed: int) -> int:
    """``-1`` -> a random seed (logged, so a good sample can be redrawn); else checked and returned."""
    if seed == -1:
        seed = secrets.randbelow(2**31 - 1)
        log.info("seed: %d", seed)
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be -1 (random) or a non-negative integer, got {seed}")
    return int(seed)


def sample_codes(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 250, top_p: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One code per row of ``logits [..., C]`` (see the module docstring for the precedence)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p > 0.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p  # always keeps the most likely code
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        picked = _multinomial(sorted_probs, generator)
        return order.gather(-1, picked[..., None])[..., 0]
    if 0 < top_k < probs.shape[-1]:
        top_probs, top_idx = probs.topk(top_k, dim=-1)
        return top_idx.gather(-1, _multinomial(top_probs, generator)[..., None])[..., 0]
    return _multinomial(probs, generator)


def _multinomial(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flat = probs.reshape(-1, probs.shape[-1])
    flat = flat / flat.sum(dim=-1, keepdim=True)
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def _batch_metadata(conditioning: Mapping[str, Any] | Sequence[Mapping[str, Any]], batch_size: int
                    ) -> list[Mapping[str, Any]]:
    """A dict applies to every item; a list gives one dict per item (its length sets the batch)."""
    if isinstance(conditioning, Mapping):
        return [conditioning] * batch_size
    items = list(conditioning)
    if len(items) != batch_size:
        raise ValueError(f"conditioning has {len(items)} items but batch_size is {batch_size}")
    return items


@torch.no_grad()
def generate_lm(
    model: AudioLanguageModelWrapper,
    max_gen_len: int = 256,
    batch_size: int = 1,
    conditioning: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    conditioning_tensors: Mapping[str, Any] | None = None,
    cfg_scale: float = 1.0,
    temperature: float = 1.0,
    top_k: int = 250,
    top_p: float = 0.0,
    seed: int = -1,
    init_codes: torch.Tensor | None = None,
    decode: bool = True,
    callback: Callable[[int, int], None] | None = None,
) -> LMGeneration:
    """Generate ``max_gen_len`` timesteps of codes (``max_gen_len * downsampling_ratio`` audio samples).

    ``conditioning``: metadata for the model's conditioner (one dict for the whole batch or one per item);
    ``conditioning_tensors`` (the conditioner's output) skips the conditioner. ``init_codes [B, K, T0]``
    (``T0 < max_gen_len``) are kept and continued. ``callback(done, total)`` reports the steps.
    """
    if max_gen_len < 1:
        raise ValueError(f"max_gen_len must be a positive number of timesteps, got {max_gen_len}")
    device = next(model.lm.parameters()).device
    if init_codes is not None:
        batch_size = init_codes.shape[0]
    if conditioning_tensors is None and conditioning is not None:
        if model.conditioner is None:
            raise ValueError("conditioning was given but the model has no conditioner (no model.conditioning)")
        if not isinstance(conditioning, Mapping):
            batch_size = len(conditioning)
        conditioning_tensors = model.conditioner(_batch_metadata(conditioning, batch_size), device)
    if conditioning_tensors is None and (model.cross_attn_cond_ids or model.prepend_cond_ids
                                         or model.global_cond_ids):
        raise ValueError("this model is conditioned: pass conditioning (metadata) or conditioning_tensors")
    inputs = model.conditioning_inputs(conditioning_tensors)
    seed = resolve_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)

    lm = model.lm
    num_q = lm.num_quantizers
    codes = torch.full((batch_size, num_q, max_gen_len), UNKNOWN, dtype=torch.long, device=device)
    start = 0
    if init_codes is not None:
        start = init_codes.shape[-1]
        if init_codes.dim() != 3 or init_codes.shape[1] != num_q or start >= max_gen_len:
            raise ValueError(f"init_codes must be [batch, {num_q}, T0] with T0 < max_gen_len ({max_gen_len}), got "
                             f"{tuple(init_codes.shape)}")
        codes[:, :, :start] = init_codes.to(device)
    pattern = lm.pattern(max_gen_len)
    sequence, mask = pattern.build_sequence(codes, lm.masked_token_id)
    first = pattern.first_step_with_timestep(start)
    total = pattern.num_steps - first
    for step in range(first, pattern.num_steps):
        logits = model.guided_logits(sequence[..., :step], inputs, cfg_scale)[:, :, -1]  # [B, K, C]
        drawn = sample_codes(logits, temperature, top_k, top_p, generator)
        drawn = torch.where(mask[:, step], drawn, torch.full_like(drawn, lm.masked_token_id))
        current = sequence[..., step]
        sequence[..., step] = torch.where(current == UNKNOWN, drawn, current)
        if callback is not None:
            callback(step - first + 1, total)
    out, _ = pattern.revert_sequence(sequence, UNKNOWN)
    if (out == UNKNOWN).any():
        raise RuntimeError("generation left codes unknown (pattern/steps mismatch)")
    tokens = model.tokens_from_codes(out)
    audio = model.decode_codes(out) if decode else None
    return LMGeneration(codes=out, tokens=tokens, audio=audio, seed=seed)


def gen_len_for(model: AudioLanguageModelWrapper, sample_size: int) -> int:
    """Timesteps of codes that cover ``sample_size`` audio samples (rounded up to whole code frames)."""
    if sample_size < 1:
        raise ValueError(f"sample_size must be a positive number of audio samples, got {sample_size}")
    return -(-int(sample_size) // int(model.min_input_length))


def generate_lm_audio(
    model: AudioLanguageModelWrapper,
    max_gen_len: int | None = None,
    sample_size: int | None = None,
    batch_size: int = 1,
    conditioning: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    cfg_scale: float = 1.0,
    temperature: float = 1.0,
    top_k: int = 250,
    top_p: float = 0.0,
    seed: int = -1,
    progress: bool = True,
) -> torch.Tensor:
    """:func:`generate_lm` in the form every front end calls (the ``lm`` entry of
    :data:`stable_audio_ops.inference.entry.GENERATORS`): decoded audio ``[B, C, samples]`` only.

    The length is exactly one of ``max_gen_len`` code timesteps or ``sample_size`` audio samples rounded up
    to whole code frames (how the generate command's ``--seconds`` / ``--sample-size`` reach an lm). Front ends send the same metadata
    (``prompt``, ``seconds_start``, ``seconds_total``, ``--cond`` keys) to every model; as a diffusion model
    ignores keys no conditioner reads, a model without a conditioner ignores the metadata altogether instead
    of failing. ``progress`` shows a bar over the sampling steps.
    """
    if (max_gen_len is None) == (sample_size is None):
        raise ValueError("give exactly one of max_gen_len (code timesteps) and sample_size (audio samples)")
    length = max_gen_len if max_gen_len is not None else gen_len_for(model, sample_size)
    if model.conditioner is None:
        conditioning = None
    bar = tqdm(disable=not progress, desc="sampling", leave=False)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    try:
        out = generate_lm(model, max_gen_len=length, batch_size=batch_size, conditioning=conditioning,
                          cfg_scale=cfg_scale, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                          callback=advance)
    finally:
        bar.close()
    return out.audio


__all__ = ["LMGeneration", "gen_len_for", "generate_lm", "generate_lm_audio", "resolve_seed", "sample_codes"]
