"""One way to generate: the model-type table, the generate entry, and one set of defaults for every front end."""

from __future__ import annotations

import inspect

import pytest
import torch

from stable_audio_ops.errors import UnknownTypeError
from stable_audio_ops.inference import generation, lm_generation
from stable_audio_ops.inference.entry import (
    CONDITIONED_MODEL_TYPES,
    GENERATION_DEFAULTS,
    GENERATORS,
    generate,
    generator_for,
)
from stable_audio_ops.models.factory import create_model_from_config
from tests.inference.test_generation import META, SAMPLE_SIZE, gen, inpaint_model, rf_model
from tests.models.lm_fixtures import DOWNSAMPLING, tiny_lm_config
from tests.models.test_adp import UNCOND


def test_the_table_covers_every_generating_model_type():
    assert GENERATORS == {"diffusion_cond": generation.generate_diffusion_cond,
                          "diffusion_cond_inpaint": generation.generate_diffusion_cond_inpaint,
                          "diffusion_uncond": generation.generate_diffusion_uncond,
                          "lm": lm_generation.generate_lm_audio}
    assert set(CONDITIONED_MODEL_TYPES) < set(GENERATORS)
    with pytest.raises(UnknownTypeError, match="'autoencoder' models cannot generate audio; .*diffusion_uncond"):
        generator_for("autoencoder")


def test_generate_dispatches_by_model_type():
    params = dict(steps=3, cfg_scale=3.0, conditioning=META, batch_size=2, sample_size=SAMPLE_SIZE, seed=7,
                  progress=False)
    torch.testing.assert_close(generate(rf_model(), "diffusion_cond", **params), gen(rf_model(), steps=3),
                               rtol=0, atol=0)
    inpainted = generate(inpaint_model(), "diffusion_cond_inpaint", **params, inpaint_mask_start_seconds=0.0,
                         inpaint_mask_end_seconds=0.01)
    assert inpainted.shape == (2, 1, SAMPLE_SIZE)


def test_parameters_of_another_model_type_are_refused_by_name():
    with pytest.raises(ValueError, match="this is a diffusion_cond model: inpaint_audio is for "
                                         "diffusion_cond_inpaint models"):
        generate(rf_model(), "diffusion_cond", conditioning=META, inpaint_audio=(16000, torch.zeros(1, 8)))
    uncond = create_model_from_config(UNCOND).eval()
    with pytest.raises(ValueError, match="cfg_scale is for diffusion_cond / diffusion_cond_inpaint / lm models"):
        generate(uncond, "diffusion_uncond", cfg_scale=3.0)
    with pytest.raises(ValueError, match="temperature, top_p are for lm models"):
        generate(uncond, "diffusion_uncond", temperature=0.5, top_p=0.9)


def test_an_lm_generates_audio_through_the_entry_and_refuses_diffusion_parameters():
    torch.manual_seed(0)
    lm = create_model_from_config(tiny_lm_config()).eval()
    params = dict(conditioning={"label": "low"}, cfg_scale=3.0, seed=5, progress=False)
    audio = generate(lm, "lm", max_gen_len=6, batch_size=2, **params)
    assert audio.shape == (2, 1, 6 * DOWNSAMPLING)
    codes = lm_generation.generate_lm(lm, max_gen_len=6, batch_size=2, **{k: v for k, v in params.items()
                                                                          if k != "progress"}).codes
    torch.testing.assert_close(audio, lm.decode_codes(codes), rtol=0, atol=0)
    # sample_size is rounded up to whole code frames
    assert generate(lm, "lm", sample_size=5 * DOWNSAMPLING - 3, **params).shape == (1, 1, 5 * DOWNSAMPLING)
    with pytest.raises(ValueError, match="this is a lm model: steps is for diffusion_cond / "
                                         "diffusion_cond_inpaint / diffusion_uncond models; sampler_type is for "
                                         r"diffusion \(sampler option\) models"):
        generate(lm, "lm", max_gen_len=4, steps=10, sampler_type="dpmpp-2m", **params)


def test_unconditional_generation_is_seeded():
    torch.manual_seed(0)
    uncond = create_model_from_config(UNCOND).eval().requires_grad_(False)
    a = generate(uncond, "diffusion_uncond", steps=3, batch_size=2, sample_size=64, seed=5, progress=False)
    b = generation.generate_diffusion_uncond(uncond, steps=3, batch_size=2, sample_size=64, seed=5, progress=False)
    c = generate(uncond, "diffusion_uncond", steps=3, batch_size=2, sample_size=64, seed=6, progress=False)
    assert a.shape == (2, 1, 64) and bool(torch.isfinite(a).all())
    assert torch.equal(a, b) and not torch.allclose(a, c)
    k = generate(uncond, "diffusion_uncond", steps=3, sample_size=64, seed=5, sampler_type="dpmpp-2m",
                 progress=False)
    assert k.shape == (1, 1, 64) and bool(torch.isfinite(k).all())


def test_every_front_end_uses_the_same_defaults():
    from stable_audio_ops.cli.generate import build_parser
    from stable_audio_ops.serving.app import GenerateRequest
    from stable_audio_ops.serving.pyfunc_model import DEFAULT_CFG_SCALE, DEFAULT_STEPS

    assert GENERATION_DEFAULTS.cfg_scale == 6.0
    args = build_parser().parse_args(["--model", "m.safetensors"])
    assert (args.steps, args.cfg_scale, args.seed) == (GENERATION_DEFAULTS.steps, GENERATION_DEFAULTS.cfg_scale,
                                                       GENERATION_DEFAULTS.seed)
    assert GenerateRequest().cfg_scale == GENERATION_DEFAULTS.cfg_scale
    assert (DEFAULT_STEPS, DEFAULT_CFG_SCALE) == (GENERATION_DEFAULTS.steps, GENERATION_DEFAULTS.cfg_scale)
    for fn in (generation.generate_diffusion_cond, generation.generate_diffusion_cond_inpaint):
        assert inspect.signature(fn).parameters["cfg_scale"].default == GENERATION_DEFAULTS.cfg_scale


def test_non_finite_output_is_an_error_not_a_result():
    from stable_audio_ops.errors import NonFiniteOutputError

    params = dict(steps=2, conditioning=META, batch_size=2, sample_size=SAMPLE_SIZE, seed=7, progress=False)
    with pytest.raises(NonFiniteOutputError, match=r"non-finite audio \(\d+ NaN, 0 Inf .*batch items \[0, 1\]"):
        generate(rf_model(), "diffusion_cond", cfg_scale=float("nan"), **params)  # a library caller's NaN
    with pytest.raises(NonFiniteOutputError, match="non-finite latents"):
        generate(rf_model(), "diffusion_cond", cfg_scale=float("nan"), return_latents=True, **params)
    assert torch.isfinite(generate(rf_model(), "diffusion_cond", cfg_scale=3.0, **params)).all()
