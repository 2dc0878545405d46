"""Does the autoencoder's output depend on its input? A collapse detector for promotion.

Why: an autoencoder that has collapsed to one "average note" can still score a moderate STFT
distance and SI-SDR on short notes (every note is roughly a decaying harmonic tone), and a promotion
rule that only compares such numbers with the previous champion would happily promote it when there
is no champion yet. Asking *which input* each reconstruction came from cannot be fooled that way: a
reconstruction that depends on its input is most similar to its own input; a collapsed one is equally
(dis)similar to all inputs, so the match rate falls to chance (~1/n).

Each clip is summarised by its time-averaged log-magnitude spectrum (n_fft 1024), which keeps pitch
and timbre and ignores phase, and clips are compared by Pearson correlation of those spectra.

Clips of the same note at another loudness are the one thing such a spectrum barely tells apart: on the
demo notes, reconstructions with a noise floor 70 dB down, or a 4-tap low-pass, still find their own
*note* ~90-100 % of the time but their own *clip* only ~40 % (the soft take matches the loud one, whose
brighter spectrum the added noise imitates). A floor on the strict match would block good autoencoders,
so callers that know the notes pass ``groups`` (e.g. instrument + pitch): a match within the group counts,
and chance becomes one in the number of groups.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from stable_audio_ops.evaluation._audio import to_mono

N_FFT = 1024
PAIR_CORRELATION_LIMIT = 0.98
MIN_HZ = 20.0  # bins below (DC offset, rumble) say nothing about the note


def mean_log_spectrum(audio: Any, n_fft: int = N_FFT, eps: float = 1e-6) -> np.ndarray:
    """Time average of ``log(|STFT| + eps)`` (Hann window, hop ``n_fft // 4``), one value per rfft bin."""
    x = to_mono(audio).astype(np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    hop = n_fft // 4
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1))
    return np.log(magnitude + eps).mean(axis=0)


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation between every row of ``a`` and every row of ``b`` (a constant row gives 0)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a @ b.T) / np.maximum(na * nb.T, 1e-12)


def _mean_off_diagonal(matrix: np.ndarray) -> float:
    n = matrix.shape[0]
    return float((matrix.sum() - np.trace(matrix)) / (n * (n - 1)))


def collapse_threshold(n: int) -> float:
    """Match accuracy at or below which the output is taken as independent of the input: twice chance (one in
    ``n`` clips or groups), and at least 0.2 so that large sets are not held to near-chance only."""
    return max(2.0 / n, 0.2)


def reconstruction_input_dependence(reconstructions: Sequence[Any], references: Sequence[Any],
                                    sample_rate: int, n_fft: int = N_FFT,
                                    groups: Sequence[Hashable] | None = None) -> dict[str, Any]:
    """How much reconstructions depend on their inputs (``references[i]`` is the input of ``reconstructions[i]``).

    Returns ``n``; ``match_accuracy``: fraction of reconstructions whose most-correlated reference is their
    own input (~1 for a working autoencoder, ~1/n for a collapsed one) — or, with ``groups``, any input of
    their own group (see the module doc; ``clip_match_accuracy`` keeps the strict own-input rate);
    ``mean_pair_correlation``: mean correlation between reconstructions of different clips, beside
    ``reference_pair_correlation`` (the same for the inputs: what "different clips" look like);
    ``collapsed``: ``match_accuracy <= max(2/k, 0.2)`` with ``k`` clips (or groups), or reconstructions more
    alike than 0.98 (and more alike than the inputs are). ``sample_rate`` is the rate of both sets (spectra
    are compared bin by bin); bins below 20 Hz are left out.
    """
    n = len(reconstructions)
    if n != len(references):
        raise ValueError(f"{n} reconstructions but {len(references)} references")
    if n < 2:
        raise ValueError(f"input dependence needs at least 2 clips, got {n}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} clips")
    labels = np.asarray([str(g) for g in groups]) if groups is not None else np.arange(n)
    k = len(set(labels.tolist()))
    keep = np.fft.rfftfreq(n_fft, 1.0 / float(sample_rate)) >= MIN_HZ
    recon = np.stack([mean_log_spectrum(a, n_fft)[keep] for a in reconstructions])
    refs = np.stack([mean_log_spectrum(a, n_fft)[keep] for a in references])
    best = np.argmax(_correlation(recon, refs), axis=1)
    match = float(np.mean(labels[best] == labels))
    recon_pairs = _mean_off_diagonal(_correlation(recon, recon))
    ref_pairs = _mean_off_diagonal(_correlation(refs, refs))
    alike = recon_pairs > PAIR_CORRELATION_LIMIT and recon_pairs > ref_pairs
    return {
        "n": n,
        "groups": k,
        "match_accuracy": match,
        "clip_match_accuracy": float(np.mean(best == np.arange(n))),
        "mean_pair_correlation": recon_pairs,
        "reference_pair_correlation": ref_pairs,
        # one group only: every match is trivially right, so only the pair correlation can tell
        "collapsed": bool((k >= 2 and match <= collapse_threshold(k)) or alike),
    }


def collapse_reason(dependence: Mapping[str, Any]) -> str | None:
    """Why the output counts as input-independent, in words for the promotion decision (None when it does not).

    ``dependence`` is :func:`reconstruction_input_dependence`'s result or metrics holding the same keys (the
    evaluation stores the group count as ``match_groups``)."""
    if not dependence.get("collapsed"):
        return None
    match = float(dependence.get("match_accuracy", float("nan")))
    pairs = dependence.get("mean_pair_correlation")
    n = int(next((dependence[k] for k in ("groups", "match_groups", "n", "n_clips") if k in dependence), 2))
    if pairs is not None and float(pairs) > PAIR_CORRELATION_LIMIT and match > collapse_threshold(n):
        return (f"autoencoder outputs are near-identical across inputs (pair correlation {float(pairs):.3f}, "
                f"inputs {float(dependence.get('reference_pair_correlation', float('nan'))):.3f})")
    return f"autoencoder output does not depend on its input (match_accuracy {match:.2f})"
