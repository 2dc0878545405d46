"""Generation end to end on tiny random latent DiTs (the dit_latent_* fixture configs), plus audio prep.

Weights are the factory's initialisation plus N(0, 0.05^2) noise, like the parity fixtures, so the
zero-initialised projections do not make the backbone trivially output zeros.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stable_audio_ops.errors import UnknownTypeError
from stable_audio_ops.inference.audio_utils import prepare_audio
from stable_audio_ops.inference.generation import (
    build_inpaint_mask,
    generate_diffusion_cond,
    generate_diffusion_cond_inpaint,
    sample_diffusion,
)
from stable_audio_ops.inference.samplers import SAMPLERS
from stable_audio_ops.models.diffusion_factory import create_diffusion_cond_from_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
META = [{"seconds_start": 0, "seconds_total": 10}, {"seconds_start": 3, "seconds_total": 20}]
SAMPLE_SIZE = 512  # 64 latent frames


def _config(case: str) -> dict:
    return json.loads((FIXTURES / case / "model_config.json").read_text())


def _perturbed(config: dict, seed: int):
    torch.manual_seed(seed)
    model = create_diffusion_cond_from_config(config, "test config")
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval().requires_grad_(False)


@functools.cache
def rf_model():
    return _perturbed(_config("dit_latent_rf"), 11)


@functools.cache
def v_model():
    return _perturbed(_config("dit_latent_v"), 12)


@functools.cache
def inpaint_model():
    config = copy.deepcopy(_config("dit_latent_rf"))
    config["model_type"] = "diffusion_cond_inpaint"
    config["model"]["diffusion"]["input_concat_ids"] = ["inpaint_mask", "inpaint_masked_input"]
    config["model"]["diffusion"]["config"]["input_concat_dim"] = 5
    return _perturbed(config, 13)


def gen(model, **kw):
    args = dict(steps=4, cfg_scale=3.0, conditioning=META, batch_size=2, sample_size=SAMPLE_SIZE, seed=7,
                progress=False)
    args.update(kw)
    return generate_diffusion_cond(model, **args)


# ---------------------------------------------------------------------------------------------- seeds


def test_same_seed_same_audio_other_seed_other_audio():
    a, b, c = gen(rf_model()), gen(rf_model()), gen(rf_model(), seed=8)
    assert a.shape == (2, 1, SAMPLE_SIZE) and bool(torch.isfinite(a).all())
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_seed_maps_to_upstreams_initial_noise():
    """seed s gives the noise of upstream's torch.manual_seed(s); torch.randn(...)."""
    torch.manual_seed(1234)
    noise = torch.randn(2, 4, 64)
    seeded = gen(rf_model(), seed=1234, return_latents=True)
    given = gen(rf_model(), seed=99, noise=noise, return_latents=True)
    torch.testing.assert_close(seeded, given, rtol=0, atol=0)


def test_given_noise_leaves_the_sde_sampler_on_the_seeds_stream():
    """The server hands each item's noise in; the SDE sampler's Brownian tree must still follow the seed."""
    torch.manual_seed(1234)
    noise = torch.randn(2, 4, 64)
    seeded = gen(v_model(), seed=1234, sampler_type="dpmpp-3m-sde", return_latents=True)
    given = gen(v_model(), seed=1234, noise=noise, sampler_type="dpmpp-3m-sde", return_latents=True)
    other = gen(v_model(), seed=1235, noise=noise, sampler_type="dpmpp-3m-sde", return_latents=True)
    torch.testing.assert_close(seeded, given, rtol=0, atol=0)
    assert not torch.allclose(given, other)


def test_random_seed_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="stable_audio_ops.inference.generation"):
        out = gen(rf_model(), seed=-1, steps=2)
    assert out.shape == (2, 1, SAMPLE_SIZE)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("seed: ")]
    assert 0 <= int(line.split()[-1]) < 2**32


def test_pingpong_is_reproducible_from_the_seed():
    a = gen(rf_model(), sampler_type="pingpong", return_latents=True)
    b = gen(rf_model(), sampler_type="pingpong", return_latents=True)
    assert torch.equal(a, b)


# -------------------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("objective,name", [(o, n) for o in ("v", "rectified_flow") for n in SAMPLERS[o]])
def test_every_registered_sampler_generates_finite_latents(objective, name):
    model = v_model() if objective == "v" else rf_model()
    steps = 6 if name == "k-dpm-fast" else 3
    latents = gen(model, steps=steps, sampler_type=name, return_latents=True)
    assert latents.shape == (2, 4, 64)
    assert bool(torch.isfinite(latents).all())


def test_unknown_sampler_error_lists_the_names():
    with pytest.raises(UnknownTypeError, match="known: dpmpp, euler, pingpong, rk4"):
        gen(rf_model(), sampler_type="dpmpp-3m-sde")
    with pytest.raises(ValueError, match="'ddpm'.*known: dpmpp-2m"):
        gen(v_model(), sampler_type="ddpm")


def test_rf_sigma_max_above_one_is_clamped():
    a = gen(rf_model(), return_latents=True)
    b = gen(rf_model(), return_latents=True, sigma_max=100.0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_callback_and_progress_bar(capsys):
    seen = []
    gen(rf_model(), steps=5, callback=seen.append, progress=True)
    assert [info["i"] for info in seen] == list(range(5))
    assert "sampling" in capsys.readouterr().err


def test_model_options_reach_the_backbone():
    """cfg_interval is a backbone option: an interval that excludes every step turns guidance off."""
    no_cfg = gen(rf_model(), cfg_scale=1.0, return_latents=True)
    outside = gen(rf_model(), cfg_scale=6.0, cfg_interval=(2.0, 3.0), return_latents=True)
    guided = gen(rf_model(), cfg_scale=6.0, return_latents=True)
    torch.testing.assert_close(outside, no_cfg, rtol=0, atol=0)
    assert not torch.allclose(guided, no_cfg)


def test_negative_conditioning_changes_the_guidance():
    plain = gen(rf_model(), return_latents=True, apg_scale=0.0)
    negative = gen(rf_model(), return_latents=True, apg_scale=0.0,
                   negative_conditioning=[{"seconds_start": 100, "seconds_total": 400}] * 2)
    assert not torch.allclose(plain, negative)


def test_trim_to_seconds_total():
    meta = [{"seconds_start": 0, "seconds_total": 0.01}, {"seconds_start": 0, "seconds_total": 0.02}]
    audio = gen(rf_model(), conditioning=meta, trim_to_seconds_total=True, steps=2)
    assert audio.shape == (2, 1, math.ceil(0.02 * 16000))
    full = gen(rf_model(), conditioning=meta, steps=2)
    torch.testing.assert_close(audio, full[..., : audio.shape[-1]])


def test_conditioning_is_required():
    with pytest.raises(ValueError, match="conditioning"):
        generate_diffusion_cond(rf_model(), steps=2, sample_size=SAMPLE_SIZE, progress=False)


# -------------------------------------------------------------------------------- audio-to-audio


def _init_audio():
    t = np.arange(300) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    return 8000, torch.from_numpy(stereo)


def _encoded_init(model, seed):
    """What generate encodes: prepared audio through the VAE, after seeding the global RNG."""
    torch.manual_seed(seed)
    audio = prepare_audio(_init_audio()[1], 8000, 16000, SAMPLE_SIZE, 1)
    return model.pretransform.encode(audio)


@pytest.mark.parametrize("objective", ["rectified_flow", "v"])
def test_low_init_noise_level_stays_close_to_the_init_audio(objective):
    model = rf_model() if objective == "rectified_flow" else v_model()
    level = 0.01
    out = gen(model, init_audio=_init_audio(), init_noise_level=level, return_latents=True)
    init = _encoded_init(model, 7).repeat(2, 1, 1)
    far = gen(model, return_latents=True)
    assert (out - init).abs().mean() < 0.1 * (far - init).abs().mean()


def test_full_init_noise_level_ignores_the_init_audio_for_rectified_flow():
    with_init = gen(rf_model(), init_audio=_init_audio(), init_noise_level=1.0, return_latents=True)
    without = gen(rf_model(), return_latents=True)
    torch.testing.assert_close(with_init, without, rtol=0, atol=0)


def test_k_sampler_init_noise_level_is_sigma_max():
    """For k-diffusion samplers init_noise_level is a Karras sigma: x = init + sigma * noise."""
    model = v_model()
    out = gen(model, sampler_type="dpmpp-2m", init_audio=_init_audio(), init_noise_level=0.05, return_latents=True)
    init = _encoded_init(model, 7).repeat(2, 1, 1)
    assert (out - init).abs().mean() < 0.1 * init.abs().mean()


def test_init_audio_generation_is_reproducible():
    a = gen(rf_model(), init_audio=_init_audio(), init_noise_level=0.5)
    b = gen(rf_model(), init_audio=_init_audio(), init_noise_level=0.5)
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------- inpainting


def _concat_inputs(model, **kw):
    """Run inpaint generation and capture the input-concat conditioning the backbone received."""
    seen = []
    handle = model.model.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(kwargs["input_concat_cond"]), with_kwargs=True)
    try:
        out = generate_diffusion_cond_inpaint(model, steps=2, cfg_scale=1.0, conditioning=META, batch_size=2,
                                              sample_size=SAMPLE_SIZE, seed=3, progress=False, **kw)
    finally:
        handle.remove()
    return out, seen[0]


def test_inpaint_mask_from_seconds_and_masked_input():
    model = inpaint_model()
    sr = model.sample_rate
    out, concat = _concat_inputs(model, inpaint_audio=(16000, _init_audio()[1][:1].repeat(1, 3)),
                                 inpaint_mask_start_seconds=128 / sr, inpaint_mask_end_seconds=384 / sr,
                                 return_latents=True)
    assert out.shape == (2, 4, 64)
    mask, masked = concat[:, :1], concat[:, 1:]
    expected = torch.ones(2, 1, 64)
    expected[..., 16:48] = 0  # samples 128..384 at ratio 8
    torch.testing.assert_close(mask, expected)
    assert bool((masked[..., 16:48] == 0).all())
    assert bool((masked[..., :16].abs() > 0).any())


def test_inpaint_without_audio_feeds_zeros():
    _, concat = _concat_inputs(inpaint_model())
    assert concat.shape == (2, 5, 64)
    assert bool((concat == 0).all())


def test_inpaint_accepts_an_audio_rate_mask_per_item():
    mask = torch.ones(2, SAMPLE_SIZE)
    mask[1, 256:] = 0
    _, concat = _concat_inputs(inpaint_model(), inpaint_audio=_init_audio(), inpaint_mask=mask)
    assert bool((concat[0, 0] == 1).all())
    assert concat[1, 0, :32].eq(1).all() and concat[1, 0, 32:].eq(0).all()


def test_build_inpaint_mask():
    mask = build_inpaint_mask(100, 10, 2.0, 5.0)
    assert mask.shape == (1, 100)
    assert mask[0, 20:50].eq(0).all() and mask[0, :20].eq(1).all() and mask[0, 50:].eq(1).all()
    with pytest.raises(ValueError, match="before its start"):
        build_inpaint_mask(100, 10, 5.0, 2.0)


# ------------------------------------------------------------------------- sample_diffusion directly


def test_cond_fn_needs_a_k_sampler():
    model = rf_model()
    cond = model.get_conditioning_inputs(model.conditioner(META, "cpu"))
    with pytest.raises(ValueError, match="k-diffusion sampler"):
        sample_diffusion(model.model, torch.zeros(2, 4, 64), cond, "rectified_flow", 2,
                         cond_fn=lambda x, sigma, denoised: torch.zeros_like(x), decode=False)


def test_zero_classifier_gradient_changes_nothing():
    model = v_model()
    cond = model.get_conditioning_inputs(model.conditioner(META, "cpu"))
    noise = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(0))
    kw = dict(sampler_type="dpmpp-2m", decode=False)
    plain = sample_diffusion(model.model, noise, cond, "v", 3, **kw)
    guided = sample_diffusion(model.model, noise, cond, "v", 3,
                              cond_fn=lambda x, sigma, denoised: torch.zeros_like(x), **kw)
    torch.testing.assert_close(plain, guided)


def test_sampler_options_reach_the_sampler_and_its_noise_comes_from_the_generator():
    model = v_model()
    cond = model.get_conditioning_inputs(model.conditioner(META, "cpu"))
    noise = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(0))

    def run(seed, eta):
        return sample_diffusion(model.model, noise, cond, "v", 4, sampler_type="v-ddim", decode=False,
                                sampler_options={"eta": eta}, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(1, 1.0), run(1, 1.0))
    assert not torch.allclose(run(1, 1.0), run(2, 1.0))
    assert torch.equal(run(1, 0.0), run(2, 0.0))  # eta = 0 is deterministic DDIM


# ------------------------------------------------------------------------------------ audio prep


def test_prepare_audio_resamples_crops_and_sets_channels():
    sr, stereo = _init_audio()  # 300 samples at 8 kHz, 2 channels
    out = prepare_audio(stereo, sr, 16000, 1000, 1)
    assert out.shape == (1, 1, 1000)
    assert out[..., 600:].abs().max() == 0  # 300 -> 600 samples, then zero padding
    assert out[..., :600].abs().max() > 0.3
    cropped = prepare_audio(stereo.numpy(), sr, sr, 100, 2)
    torch.testing.assert_close(cropped[0], stereo[:, :100])
    mono_to_stereo = prepare_audio(stereo[0], sr, sr, 300, 2)
    torch.testing.assert_close(mono_to_stereo[0, 0], mono_to_stereo[0, 1])
    torch.testing.assert_close(prepare_audio(stereo, sr, sr, 300, 1)[0, 0], stereo.mean(0))
    with pytest.raises(ValueError, match="4 channels"):
        prepare_audio(stereo, sr, sr, 300, 4)


def test_unconditional_dit_generates_through_a_wavelet_pretransform_and_from_init_audio() -> None:
    """generate_diffusion_uncond (unusable in 0.0.20) with the DiT backbone over a parameter-free
    pretransform: seeded, decodes to audio, returns latents on request, and audio-to-audio keeps the
    init audio at a low noise level while a full noise level replaces it."""
    from stable_audio_ops.inference.generation import generate_diffusion_uncond
    from stable_audio_ops.models.factory import create_model_from_config

    config = {"model_type": "diffusion_uncond", "sample_size": 256, "sample_rate": 16000,
              "model": {"type": "dit", "config": {"in_channels": 8, "embed_dim": 32, "depth": 1, "num_heads": 1},
                        "pretransform": {"type": "wavelet", "config": {"channels": 1, "levels": 3}}}}
    torch.manual_seed(0)
    model = create_model_from_config(config).eval()
    run = functools.partial(generate_diffusion_uncond, model, steps=6, batch_size=2, sample_size=256, progress=False)
    first, again = run(seed=3), run(seed=3)
    assert first.shape == (2, 1, 256) and torch.equal(first, again) and bool(torch.isfinite(first).all())
    assert run(seed=3, return_latents=True).shape == (2, 8, 32)
    tone = 0.5 * torch.sin(2 * math.pi * 440 * torch.arange(256) / 16000)[None]
    kept = run(seed=3, init_audio=(16000, tone), init_noise_level=0.01)
    replaced = run(seed=3, init_audio=(16000, tone), init_noise_level=1.0)
    assert (kept - tone).abs().max() < 0.1 < (replaced - tone).abs().max()


def test_conditioning_keys_values_are_projected_once_per_generation_with_the_same_audio(monkeypatch):
    """generate_diffusion_cond runs the sampler inside the DiT's per-generation cache: each layer projects the
    condition tokens to keys/values once, not at each of the steps, and the audio is bitwise what
    recomputing them at every step gives."""
    import contextlib

    from stable_audio_ops.inference import generation

    model = v_model()
    calls = []
    hooks = [layer.cross_attn.to_kv.register_forward_hook(lambda *a: calls.append(1))
             for layer in model.model.model.transformer.layers]
    try:
        with torch.no_grad():
            cached = gen(model, steps=6)
            per_generation = len(calls)
            monkeypatch.setattr(generation, "_reuse_step_invariants", lambda net: contextlib.nullcontext())
            uncached = gen(model, steps=6)
    finally:
        for hook in hooks:
            hook.remove()
    assert per_generation == len(hooks)
    assert len(calls) - per_generation > 3 * len(hooks)  # without the cache: once per model call
    assert torch.equal(cached, uncached)


# ---------------------------------------------------------------------------------------------- precision


def test_bf16_precision_stays_close_to_fp32_and_runs_the_backbone_in_bf16():
    model = rf_model()
    dtypes = []
    linear = next(m for m in model.model.modules() if isinstance(m, torch.nn.Linear))
    hook = linear.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    try:
        full = gen(model, return_latents=True)
        half = gen(model, return_latents=True, precision="bf16")
    finally:
        hook.remove()
    assert half.dtype == torch.float32  # the sampler keeps float32 state
    assert torch.bfloat16 not in dtypes[: len(dtypes) // 2] and torch.bfloat16 in dtypes[len(dtypes) // 2:]
    relative = float((half - full).pow(2).mean().sqrt() / full.pow(2).mean().sqrt())
    assert 0 < relative < 0.02, relative  # differs (bf16 ran), but only by bf16 rounding
    assert torch.equal(gen(model, return_latents=True, precision="fp32"), full)  # the default is upstream's fp32


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        gen(rf_model(), precision="fp16")
