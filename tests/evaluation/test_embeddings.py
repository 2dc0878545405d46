"""Embedders: aiSFX loads from its wheel (no download) and separates real notes from noise; the
mel-statistics fallback is shape-stable and batch-invariant."""

from __future__ import annotations

import numpy as np
import pytest

from stable_audio_ops.evaluation.distribution import distribution_distances
from stable_audio_ops.evaluation.embeddings import AisfxEmbedder, get_embedder, mel_stats_embedding


@pytest.fixture(scope="module")
def aisfx():
    return AisfxEmbedder()


def test_aisfx_embeds_any_rate_and_length_to_512_dims_deterministically(aisfx, demo_clips):
    audio, sr, _ = demo_clips[0]
    long_stereo = np.stack([np.tile(audio, 3), np.tile(audio, 3)])  # 4.5 s: several 2.3 s blocks
    emb = aisfx([(audio, sr), (long_stereo, sr), (np.zeros(100, np.float32), 44100)])
    assert emb.shape == (3, 512) and emb.dtype == np.float32 and np.isfinite(emb).all()
    again = aisfx([(audio, sr)])
    np.testing.assert_allclose(again[0], emb[0], rtol=1e-5, atol=1e-6)


def test_aisfx_puts_real_notes_near_each_other_and_noise_far_away(aisfx, demo_clips):
    real = [(a, sr) for a, sr, _ in demo_clips]
    ref, other = real[::2], real[1::2]
    rng = np.random.default_rng(0)
    noise = [(0.05 * rng.standard_normal(len(a)).astype(np.float32), sr) for a, sr in other]
    e_ref, e_other, e_noise = aisfx(ref), aisfx(other), aisfx(noise)
    real_kid = distribution_distances(e_ref, e_other, subsets=10)["kid"]
    noise_kid = distribution_distances(e_ref, e_noise, subsets=10)["kid"]
    assert noise_kid > 20 * max(real_kid, 0.05)


def test_mel_stats_is_batch_invariant_and_registry_lists_known_names(demo_clips):
    clips = [(a, sr) for a, sr, _ in demo_clips[:4]]
    together = mel_stats_embedding(clips)
    alone = np.concatenate([mel_stats_embedding([c]) for c in clips])
    assert together.shape == (4, 128)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-4)
    assert get_embedder("mel_stats") is mel_stats_embedding
    with pytest.raises(ValueError, match="aisfx, mel_stats"):
        get_embedder("clap")
