"""``generate_lm``: shapes, seeding, greedy sampling, conditioning and guidance, sampling filters."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.inference.lm_generation import generate_lm, sample_codes
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.lm import AudioLanguageModelWrapper
from tests.models.lm_fixtures import CODEBOOK_SIZE, DOWNSAMPLING, NUM_QUANTIZERS, tiny_lm_config


@pytest.fixture(scope="module")
def model() -> AudioLanguageModelWrapper:
    torch.manual_seed(0)
    return create_model_from_config(tiny_lm_config()).eval()


def test_generation_returns_codes_tokens_and_decoded_audio(model: AudioLanguageModelWrapper) -> None:
    steps = []
    out = generate_lm(model, max_gen_len=12, batch_size=2, conditioning={"label": "low"}, seed=3,
                      callback=lambda done, total: steps.append((done, total)))
    assert out.codes.shape == (2, NUM_QUANTIZERS, 12) and out.codes.dtype == torch.long
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < CODEBOOK_SIZE  # never the special token
    assert out.tokens.shape == (2, 12, NUM_QUANTIZERS)  # rvq's own layout, what decode_tokens takes
    assert out.audio.shape == (2, 1, 12 * DOWNSAMPLING) and torch.isfinite(out.audio).all()
    assert torch.allclose(out.audio, model.pretransform.decode_tokens(out.tokens))
    # delay pattern over 3 codebooks: 12 + 2 steps after the start token
    assert steps[-1] == (14, 14) and len(steps) == 14 and out.seed == 3


def test_a_seed_reproduces_a_generation_and_another_seed_differs(model: AudioLanguageModelWrapper) -> None:
    kwargs = {"max_gen_len": 10, "batch_size": 2, "conditioning": {"label": "high"}, "decode": False}
    first, again = generate_lm(model, seed=7, **kwargs), generate_lm(model, seed=7, **kwargs)
    other = generate_lm(model, seed=8, **kwargs)
    assert torch.equal(first.codes, again.codes)
    assert not torch.equal(first.codes, other.codes)


def test_top_k_1_is_greedy_whatever_the_seed(model: AudioLanguageModelWrapper) -> None:
    kwargs = {"max_gen_len": 10, "conditioning": [{"label": "low"}], "decode": False}
    greedy = generate_lm(model, top_k=1, seed=1, **kwargs).codes
    assert torch.equal(greedy, generate_lm(model, top_k=1, seed=2, **kwargs).codes)
    assert torch.equal(greedy, generate_lm(model, temperature=0, seed=3, **kwargs).codes)


def test_conditioning_and_guidance_change_the_output(model: AudioLanguageModelWrapper) -> None:
    kwargs = {"max_gen_len": 16, "top_k": 1, "decode": False}
    low = generate_lm(model, conditioning={"label": "low"}, **kwargs).codes
    high = generate_lm(model, conditioning={"label": "high"}, **kwargs).codes
    guided = generate_lm(model, conditioning={"label": "low"}, cfg_scale=4.0, **kwargs).codes
    assert not torch.equal(low, high)
    assert not torch.equal(low, guided)
    with pytest.raises(ValueError, match="this model is conditioned"):
        generate_lm(model, max_gen_len=4)


def test_init_codes_are_kept_and_continued(model: AudioLanguageModelWrapper) -> None:
    init = torch.randint(0, CODEBOOK_SIZE, (1, NUM_QUANTIZERS, 5))
    out = generate_lm(model, max_gen_len=9, conditioning={"label": "low"}, init_codes=init, seed=0, decode=False)
    assert out.codes.shape == (1, NUM_QUANTIZERS, 9) and torch.equal(out.codes[:, :, :5], init)


def test_sampling_filters_keep_only_the_allowed_codes() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(2000, 4)
    generator = torch.Generator().manual_seed(0)
    top2 = sample_codes(logits, top_k=2, generator=generator)
    assert set(top2.tolist()) == {0, 1}
    nucleus = sample_codes(logits, top_p=0.7, generator=generator)  # 0.5 + 0.3 covers 0.7
    assert set(nucleus.tolist()) == {0, 1}
    full = sample_codes(logits, top_k=0, generator=generator)
    assert set(full.tolist()) == {0, 1, 2, 3}
    assert abs(float((full == 0).float().mean()) - 0.5) < 0.05
    assert sample_codes(logits[:1], temperature=0).tolist() == [0]
