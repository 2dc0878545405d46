"""Codebook interleaving patterns: the delay layout MusicGen documents, and build -> revert round trips."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.models.codebook_patterns import CODEBOOK_PATTERNS, get_pattern

S = 99  # special token


def test_delay_pattern_shifts_codebook_q_by_q_steps() -> None:
    codes = torch.tensor([[[1, 2, 3, 4], [11, 12, 13, 14], [21, 22, 23, 24]]])
    pattern = get_pattern("delay", 3, 4)
    sequence, mask = pattern.build_sequence(codes, S)
    assert sequence.tolist() == [[[S, 1, 2, 3, 4, S, S],
                                  [S, S, 11, 12, 13, 14, S],
                                  [S, S, S, 21, 22, 23, 24]]]
    assert mask.tolist() == (sequence[0] != S).tolist()
    # training keeps the valid steps only: those before any code past the clip would be needed
    valid, _ = pattern.build_sequence(codes, S, valid_only=True)
    assert valid.tolist() == [[[S, 1, 2, 3, 4], [S, S, 11, 12, 13], [S, S, S, 21, 22]]]


def test_logits_at_step_s_are_aligned_with_the_codes_of_step_s_plus_1() -> None:
    pattern = get_pattern("delay", 2, 3)
    steps = pattern.num_steps  # 1 + 3 + 1
    # logits whose only non-zero class is the step index they were computed at
    logits = torch.arange(steps, dtype=torch.float32).view(1, 1, steps, 1).expand(1, 2, steps, 1)
    aligned, mask = pattern.revert_logits(logits)
    assert mask.all()
    # codebook 0 of timestep t sits at step t + 1 (predicted at step t); codebook 1 at step t + 2
    assert aligned[0, :, :, 0].tolist() == [[0, 1, 2], [1, 2, 3]]
    # over the valid steps only, codebook 1 of the last timestep has no prediction
    _, valid_mask = pattern.revert_logits(logits[:, :, :pattern.num_valid_steps], valid_only=True)
    assert valid_mask.tolist() == [[True, True, True], [True, True, False]]


@pytest.mark.parametrize("name", sorted(CODEBOOK_PATTERNS))
@pytest.mark.parametrize("timesteps", [1, 6])
def test_build_then_revert_gives_the_codes_back(name: str, timesteps: int) -> None:
    torch.manual_seed(0)
    codes = torch.randint(0, 16, (3, 4, timesteps))
    pattern = get_pattern(name, 4, timesteps)
    sequence, mask = pattern.build_sequence(codes, S)
    assert sequence.shape == (3, 4, pattern.num_steps) and (sequence[:, :, 0] == S).all()
    assert int(mask.sum()) == 4 * timesteps  # every code appears exactly once
    restored, restored_mask = pattern.revert_sequence(sequence, S)
    assert torch.equal(restored, codes) and restored_mask.all()


def test_flattening_patterns_emit_one_code_per_step() -> None:
    for name in ("unroll", "musiclm"):
        pattern = get_pattern(name, 2, 3)
        assert pattern.num_steps == 1 + 2 * 3 and all(len(step) == 1 for step in pattern.layout[1:])
    assert get_pattern("unroll", 2, 2).layout[1:] == (((0, 0),), ((0, 1),), ((1, 0),), ((1, 1),))
    assert get_pattern("musiclm", 4, 2).layout[1:5] == (((0, 0),), ((0, 1),), ((1, 0),), ((1, 1),))


def test_bad_patterns_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown codebook pattern 'zigzag'; known: delay"):
        get_pattern("zigzag", 2, 4)
    with pytest.raises(ValueError, match="3 codebooks do not divide"):
        get_pattern("musiclm", 3, 4)
    with pytest.raises(ValueError, match="got 5 codebooks, the pattern has 4"):
        get_pattern("delay", 4, 2).build_sequence(torch.zeros(1, 5, 2, dtype=torch.long), S)
