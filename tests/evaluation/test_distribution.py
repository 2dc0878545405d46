"""KID and FD on known distributions: ~0 for two samples of one distribution, large for a shifted one."""

from __future__ import annotations

import numpy as np
import pytest

from stable_audio_ops.evaluation.distribution import (
    distribution_distances,
    frechet_distance,
    kernel_inception_distance,
    mmd2_unbiased,
    standardization,
)


def gaussian(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)) * scale + shift


def test_same_distribution_gives_kid_near_zero_and_shifted_gives_large():
    ref, same, shifted = gaussian(300, 32, 0), gaussian(300, 32, 1), gaussian(300, 32, 2, shift=1.0)
    same_d = distribution_distances(ref, same, subsets=20, subset_size=200)
    shifted_d = distribution_distances(ref, shifted, subsets=20, subset_size=200)
    assert abs(same_d["kid"]) < 0.05
    assert shifted_d["kid"] > 1.0
    assert shifted_d["kid"] > 50 * max(abs(same_d["kid"]), 1e-3)


def test_fd_is_small_for_same_distribution_and_matches_the_gaussian_formula_when_shifted():
    ref, same = gaussian(2000, 8, 0), gaussian(2000, 8, 1)
    shifted = gaussian(2000, 8, 2, shift=2.0)
    assert frechet_distance(ref, same) < 0.1
    # Means differ by 2 in each of 8 dims, covariances equal: FD ~ 8 * 4 = 32
    assert frechet_distance(ref, shifted) == pytest.approx(32.0, rel=0.05)
    # A scale change (std 2 vs 1, equal means): FD = d * (1 + 4 - 2 * 2) = 8
    assert frechet_distance(ref, gaussian(2000, 8, 3, scale=2.0)) == pytest.approx(8.0, rel=0.1)


def test_fd_stays_finite_with_fewer_clips_than_dimensions_and_dead_units():
    ref, cand = gaussian(20, 64, 0), gaussian(20, 64, 1)
    ref[:, :10] = 0.0  # dead units
    cand[:, :10] = 0.0
    value = frechet_distance(ref, cand)
    assert np.isfinite(value) and value >= 0.0


def test_unbiased_mmd_is_zero_in_expectation_and_kid_std_is_reported():
    values = [mmd2_unbiased(gaussian(50, 4, s), gaussian(50, 4, 100 + s)) for s in range(30)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values)) + 1e-3
    out = kernel_inception_distance(gaussian(100, 4, 0), gaussian(80, 4, 1), subsets=10, subset_size=50)
    assert set(out) == {"kid", "kid_std"} and out["kid_std"] > 0.0


def test_standardization_uses_one_scalar_so_dead_dimensions_do_not_explode():
    ref = gaussian(500, 16, 0, scale=3.0)
    ref[:, 0] = 5.0  # a constant (dead) dimension in the reference
    mean, scale = standardization(ref)
    assert mean[0] == pytest.approx(5.0)
    assert scale == pytest.approx(3.0 * np.sqrt(15 / 16), rel=0.05)
    cand = gaussian(500, 16, 1, scale=3.0)
    cand[:, 0] = 5.5  # a per-dim z-score would divide this 0.5 offset by ~0
    assert distribution_distances(ref, cand, subsets=5, subset_size=200)["fd"] < 1.0


def test_kid_and_fd_are_invariant_to_a_global_rescale_of_both_sets():
    ref, cand = gaussian(200, 8, 0), gaussian(200, 8, 1, shift=0.5)
    a = distribution_distances(ref, cand, subsets=5, subset_size=100)
    b = distribution_distances(ref * 1000.0, cand * 1000.0, subsets=5, subset_size=100)
    assert b["kid"] == pytest.approx(a["kid"], rel=1e-6)
    assert b["fd"] == pytest.approx(a["fd"], rel=1e-6)


def test_too_few_clips_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2"):
        distribution_distances(gaussian(1, 4, 0), gaussian(5, 4, 1))
    with pytest.raises(ValueError, match="sizes differ"):
        kernel_inception_distance(gaussian(5, 4, 0), gaussian(5, 3, 1))
