"""Distribution distances between embedding sets: KID (primary) and Fréchet distance.

With a few hundred clips the Fréchet distance has a large positive bias (real vs real is far from 0),
while the unbiased KID estimate sits at ~0 for two samples of one distribution, so KID is the headline
number and FD is reported beside it with its real/real floor.

Both are computed after :func:`standardize`: centre on the *reference* mean and divide by one scalar,
the RMS of the reference's per-dimension std. A per-dimension z-score would explode on dimensions that
are (nearly) constant in the reference, such as dead ReLU units; one scalar keeps the geometry and makes
numbers comparable across embedders.
"""

from __future__ import annotations

import numpy as np


def _as_2d(x: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{what}: expected [N, D] embeddings, got shape {array.shape}")
    return array


def standardization(reference: np.ndarray) -> tuple[np.ndarray, float]:
    """``(mean, scale)`` of the reference: mean per dimension, scale = RMS per-dimension std (>0)."""
    ref = _as_2d(reference, "reference")
    mean = ref.mean(axis=0)
    scale = float(np.sqrt(np.mean(ref.var(axis=0))))
    return mean, (scale if scale > 0 else 1.0)


def standardize(x: np.ndarray, mean: np.ndarray, scale: float) -> np.ndarray:
    return (_as_2d(x, "embeddings") - mean) / scale


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel ``(x.y / d + 1)^3`` (the KID kernel)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic kernel (diagonals excluded, so it can be slightly negative)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"KID needs at least 2 clips per set, got {m} and {n}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    term_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(term_x + term_y - 2.0 * kxy.mean())


def kernel_inception_distance(reference: np.ndarray, candidate: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """KID = mean over ``subsets`` random subsets (without replacement, ``min(subset_size, N)`` clips each
    side) of the unbiased MMD^2. Inputs are used as given (standardise first). Returns kid and kid_std."""
    ref = _as_2d(reference, "reference")
    cand = _as_2d(candidate, "candidate")
    if ref.shape[1] != cand.shape[1]:
        raise ValueError(f"KID: embedding sizes differ ({ref.shape[1]} vs {cand.shape[1]})")
    size = min(int(subset_size), len(ref), len(cand))
    if size < 2:
        raise ValueError(f"KID needs at least 2 clips per set, got {len(ref)} and {len(cand)}")
    rng = np.random.default_rng(seed)
    full = size == len(ref) == len(cand)
    rounds = 1 if full else int(subsets)
    values = []
    for _ in range(rounds):
        a = ref if size == len(ref) else ref[rng.choice(len(ref), size, replace=False)]
        b = cand if size == len(cand) else cand[rng.choice(len(cand), size, replace=False)]
        values.append(mmd2_unbiased(a, b))
    return {"kid": float(np.mean(values)), "kid_std": float(np.std(values))}


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``|mu_r - mu_c|^2 + tr(S_r + S_c - 2 (S_r^1/2 S_c S_r^1/2)^1/2)`` of Gaussian fits.

    The matrix root is taken through symmetric eigendecompositions, so rank-deficient covariances (fewer
    clips than dimensions, dead units) stay real and finite.
    """
    ref = _as_2d(reference, "reference")
    cand = _as_2d(candidate, "candidate")
    if len(ref) < 2 or len(cand) < 2:
        raise ValueError(f"FD needs at least 2 clips per set, got {len(ref)} and {len(cand)}")
    mu_r, mu_c = ref.mean(axis=0), cand.mean(axis=0)
    cov_r, cov_c = np.cov(ref, rowvar=False), np.cov(cand, rowvar=False)
    root_r = _sqrt_psd(cov_r)
    cross = np.linalg.eigvalsh((root_r @ cov_c @ root_r + (root_r @ cov_c @ root_r).T) / 2.0)
    trace_root = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    value = float(np.sum((mu_r - mu_c) ** 2) + np.trace(cov_r) + np.trace(cov_c) - 2.0 * trace_root)
    return max(value, 0.0)


def distribution_distances(reference: np.ndarray, candidate: np.ndarray, subsets: int = 100,
                           subset_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """KID (+ std) and FD of ``candidate`` against ``reference`` after standardising on the reference."""
    mean, scale = standardization(reference)
    ref = standardize(reference, mean, scale)
    cand = standardize(candidate, mean, scale)
    out = kernel_inception_distance(ref, cand, subsets=subsets, subset_size=subset_size, seed=seed)
    out["fd"] = frechet_distance(ref, cand)
    return out
