"""Codebook interleaving patterns for multi-codebook language models (MusicGen's ``delay``, ``parallel``,
``unroll`` and the MusicLM-like flattening), as stable-audio-tools 0.0.20 takes them from audiocraft.

A language model over ``K`` parallel codebooks predicts one *sequence step* at a time; a pattern says which
``(timestep, codebook)`` codes sit at each step. The first step is always empty, so every built sequence
starts with a special token (the model's "start" input). :class:`Pattern` turns codes ``[B, K, T]`` into the
interleaved sequence ``[B, K, S]`` (positions the layout leaves empty hold a special token) and back, and
re-aligns logits computed over the sequence with the codes they predict.

Layouts are plain functions ``(n_q, timesteps) -> layout`` in :data:`CODEBOOK_PATTERNS` (keyed by the
``lm.codebook_pattern`` config value); a new pattern plugs in by adding one. Index tables are built once per
``(pattern, timesteps, n_q)`` and cached.

Difference from 0.0.20: ``musiclm`` with a number of codebooks that ``group_by`` (2) does not divide is a clear
error (upstream builds coordinates for codebooks that do not exist and fails in a bare ``KeyError``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import torch

Coord = tuple[int, int]  # (timestep t, codebook q)
Layout = tuple[tuple[Coord, ...], ...]  # sequence step -> the codes emitted at that step


@dataclass(frozen=True)
class Pattern:
    """A layout over ``timesteps`` timesteps of ``n_q`` codebooks (``layout[0]`` is the empty start step)."""

    layout: Layout
    timesteps: int
    n_q: int
    _tables: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.layout or self.layout[0]:
            raise ValueError("a pattern layout must start with an empty step (the special start token)")
        last_t = [-1] * self.n_q
        for s, coords in enumerate(self.layout):
            qs = [q for _, q in coords]
            if len(set(qs)) != len(qs):
                raise ValueError(f"step {s} holds two codes of the same codebook")
            for t, q in coords:
                if not 0 <= q < self.n_q:
                    raise ValueError(f"step {s} refers to codebook {q}, the pattern has {self.n_q}")
                if t < last_t[q]:
                    raise ValueError(f"codebook {q} goes back in time at step {s}")
                last_t[q] = t

    # --- geometry ---------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        """Sequence steps of the full layout, the start step included."""
        return len(self.layout)

    @property
    def max_delay(self) -> int:
        """How many steps the layout runs past the last timestep (codebooks delayed beyond ``timesteps``)."""
        last = max((t + 1 for coords in self.layout for t, _ in coords), default=0)
        return last - self.timesteps

    @property
    def num_valid_steps(self) -> int:
        """Steps of the *valid* layout: the prefix in which every step only holds codes of known timesteps
        (what training uses: the last ``max_delay`` steps would predict codes past the clip)."""
        return self.num_steps - self.max_delay

    def first_step_with_timestep(self, t: int) -> int | None:
        """The first sequence step holding a code of timestep ``t`` (where generation starts after ``t`` known
        timesteps); ``None`` when no step does."""
        for s, coords in enumerate(self.layout):
            if any(ct == t for ct, _ in coords):
                return s
        return None

    # --- index tables (cached per call signature) ----------------------------------------------------
    def _table(self, key: tuple, build: Callable[[], tuple[torch.Tensor, torch.Tensor]], device: torch.device):
        cpu = self._tables.get(key)
        if cpu is None:
            cpu = self._tables[key] = build()
        return cpu[0].to(device), cpu[1].to(device)

    def _sequence_indexes(self, timesteps: int, valid_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``[K, S]`` gather indexes into the flattened codes (``K * timesteps`` = the special token) + mask."""
        steps = self.num_valid_steps if valid_only else self.num_steps
        special = self.n_q * timesteps
        indexes = torch.full((self.n_q, steps), special, dtype=torch.long)
        mask = torch.zeros((self.n_q, steps), dtype=torch.bool)
        for s, coords in enumerate(self.layout[:steps]):
            for t, q in coords:
                if t < timesteps:
                    indexes[q, s] = q * timesteps + t
                    mask[q, s] = True
        return indexes, mask

    def _revert_indexes(self, steps: int, valid_only: bool, model_output: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``[K, T]`` gather indexes into a flattened ``[K, steps]`` sequence (``K * steps`` = special) + mask.

        With ``model_output`` the layout is read one step later: the output at step ``s`` predicts the codes
        of step ``s + 1``."""
        layout = self.layout[:self.num_valid_steps] if valid_only else self.layout
        if steps > len(layout):
            raise ValueError(f"sequence of {steps} steps is longer than the pattern's {len(layout)}")
        if model_output:
            layout = layout[1:]
        indexes = torch.full((self.n_q, self.timesteps), self.n_q * steps, dtype=torch.long)
        mask = torch.zeros((self.n_q, self.timesteps), dtype=torch.bool)
        for s, coords in enumerate(layout[:steps]):
            for t, q in coords:
                if t < self.timesteps:
                    indexes[q, t] = q * steps + s
                    mask[q, t] = True
        return indexes, mask

    # --- build / revert --------------------------------------------------------------------------------
    def build_sequence(self, codes: torch.Tensor, special_token: int, valid_only: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``[B, K, T]`` (``T <= timesteps``) -> interleaved sequence ``[B, K, S]`` and its ``[K, S]`` mask
        of positions holding a real code (the rest hold ``special_token``). ``valid_only`` keeps the valid
        steps only (``S = num_valid_steps``), else the full layout."""
        b, k, t = codes.shape
        self._check(k, t)
        indexes, mask = self._table(("seq", t, valid_only), lambda: self._sequence_indexes(t, valid_only),
                                    codes.device)
        flat = torch.cat([codes.reshape(b, k * t), codes.new_full((b, 1), special_token)], dim=1)
        return flat[:, indexes.reshape(-1)].reshape(b, k, -1), mask

    def revert_sequence(self, sequence: torch.Tensor, special_token: int, valid_only: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Interleaved ``[B, K, S]`` -> codes ``[B, K, timesteps]`` and the ``[K, timesteps]`` mask of codes the
        sequence holds (the others are ``special_token``)."""
        b, k, s = sequence.shape
        self._check(k, None)
        indexes, mask = self._table(("rev", s, valid_only, False),
                                    lambda: self._revert_indexes(s, valid_only, False), sequence.device)
        flat = torch.cat([sequence.reshape(b, k * s), sequence.new_full((b, 1), special_token)], dim=1)
        return flat[:, indexes.reshape(-1)].reshape(b, k, self.timesteps), mask

    def revert_logits(self, logits: torch.Tensor, special_value: float = float("nan"), valid_only: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model outputs over the sequence ``[B, K, S, C]`` -> logits aligned with the codes they predict,
        ``[B, K, timesteps, C]``, and the ``[K, timesteps]`` mask of codes that have a prediction (the output
        at step ``s`` predicts the codes of step ``s + 1``; the last output predicts nothing)."""
        b, k, s, c = logits.shape
        self._check(k, None)
        indexes, mask = self._table(("logits", s, valid_only, True),
                                    lambda: self._revert_indexes(s, valid_only, True), logits.device)
        flat = torch.cat([logits.reshape(b, k * s, c), logits.new_full((b, 1, c), special_value)], dim=1)
        return flat[:, indexes.reshape(-1)].reshape(b, k, self.timesteps, c), mask

    def _check(self, k: int, t: int | None) -> None:
        if k != self.n_q:
            raise ValueError(f"got {k} codebooks, the pattern has {self.n_q}")
        if t is not None and t > self.timesteps:
            raise ValueError(f"got {t} timesteps, the pattern has {self.timesteps}")


# --- layouts ---------------------------------------------------------------------------------------------

def delay_layout(n_q: int, timesteps: int, delays: list[int] | None = None) -> Layout:
    """MusicGen's delay pattern: codebook ``q`` is shifted ``delays[q]`` steps (default ``q``) to the right, so
    each step predicts codebook ``q`` of timestep ``t`` after codebooks ``< q`` of that timestep were seen.

    ``n_q = 3, T = 4``: ``[[S, 1, 2, 3, 4, S, S], [S, S, 1, 2, 3, 4, S], [S, S, S, 1, 2, 3, 4]]``."""
    delays = list(range(n_q)) if delays is None else list(delays)
    if len(delays) != n_q or sorted(delays) != delays or min(delays, default=0) < 0:
        raise ValueError(f"delays must be {n_q} non-decreasing non-negative ints, got {delays}")
    out: list[tuple[Coord, ...]] = [()]
    for step in range(timesteps + max(delays, default=0)):
        out.append(tuple((step - d, q) for q, d in enumerate(delays) if step - d >= 0))
    return tuple(out)


def parallel_layout(n_q: int, timesteps: int) -> Layout:
    """All codebooks of a timestep in the same step (the delay pattern with no delays)."""
    return delay_layout(n_q, timesteps, [0] * n_q)


def unroll_layout(n_q: int, timesteps: int) -> Layout:
    """Full flattening: one codebook per step, ``n_q`` steps per timestep, codebook 0 first (audiocraft's
    ``UnrolledPatternProvider`` with its defaults: ``flattening = range(n_q)``, no delays)."""
    out: list[tuple[Coord, ...]] = [()]
    for t in range(timesteps):
        out.extend(((t, q),) for q in range(n_q))
    return tuple(out)


def musiclm_layout(n_q: int, timesteps: int, group_by: int = 2) -> Layout:
    """MusicLM-like flattening: the first ``group_by`` codebooks over the whole clip, then the next group, ...;
    each step holds one code."""
    if n_q % group_by:
        raise ValueError(f"the musiclm pattern groups codebooks by {group_by}; {n_q} codebooks do not divide "
                         "into such groups")
    out: list[tuple[Coord, ...]] = [()]
    for first in range(0, n_q, group_by):
        for t in range(timesteps):
            out.extend(((t, q),) for q in range(first, first + group_by))
    return tuple(out)


# ``lm.codebook_pattern`` -> layout(n_q, timesteps)
CODEBOOK_PATTERNS: dict[str, Callable[[int, int], Layout]] = {
    "delay": delay_layout,
    "parallel": parallel_layout,
    "unroll": unroll_layout,
    "musiclm": musiclm_layout,
}


@lru_cache(maxsize=128)
def get_pattern(name: str, n_q: int, timesteps: int) -> Pattern:
    """The (cached) :class:`Pattern` ``name`` over ``timesteps`` timesteps of ``n_q`` codebooks."""
    if name not in CODEBOOK_PATTERNS:
        raise ValueError(f"unknown codebook pattern {name!r}; known: {', '.join(CODEBOOK_PATTERNS)}")
    return Pattern(CODEBOOK_PATTERNS[name](n_q, timesteps), timesteps=timesteps, n_q=n_q)


__all__ = ["CODEBOOK_PATTERNS", "Layout", "Pattern", "delay_layout", "get_pattern", "musiclm_layout",
           "parallel_layout", "unroll_layout"]
