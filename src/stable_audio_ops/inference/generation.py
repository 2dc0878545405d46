"""Conditioned generation: noise -> sampler -> latents -> audio, with stable-audio-tools 0.0.20 defaults.

:func:`sample_diffusion` is the one place that knows how each sampler family is driven (which
schedule, how the initial noise and init data are scaled, which model adapter). The samplers
themselves (:mod:`stable_audio_ops.sampling.samplers`) stay pure functions of a bound model callable.

:func:`generate_diffusion_cond` / :func:`generate_diffusion_cond_inpaint` / :func:`generate_diffusion_uncond`
add what a user needs around it: seeding, conditioning, init audio (audio-to-audio), inpainting masks,
decoding, a progress bar and optional trimming to ``seconds_total``. Front ends pick the function by model
type through :mod:`stable_audio_ops.inference.entry`.

Deliberate differences from 0.0.20 (none affects the parity fixtures):

- noise is drawn from a dedicated ``torch.Generator`` seeded with ``seed`` (the same numbers as
  upstream's ``torch.manual_seed(seed); torch.randn(...)``); stochastic samplers continue from it;
- sampler names are validated per objective (0.0.20 silently ran DDIM for any unknown v sampler);
- t-space noise levels (``sigma_max`` / ``init_noise_level`` for v-DDIM and rectified flow) are
  clamped to <= 1 instead of producing a meaningless schedule;
- the CUDA TF32 / reduced-precision switches are restored after generation instead of left off;
- ``precision="bf16"`` (this package's option; default ``"fp32"``, upstream's numbers) runs the diffusion
  backbone's calls under bfloat16 autocast and keeps the sampler's arithmetic, the conditioners and the
  decoder in float32. On CPUs with AMX/AVX512-BF16 (and on GPUs) the backbone's linear layers are the
  bulk of generation and run ~4x faster; the ``dit_gen`` workload takes ~0.55x the float32 time with
  decoded audio within ~1e-4 relative RMS (benchmarks/README.md has the measurements).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from stable_audio_ops.errors import GenerationCancelled
from stable_audio_ops.inference.audio_utils import as_batched_audio, prepare_audio
from stable_audio_ops.inference.defaults import DEFAULT_CFG_SCALE
from stable_audio_ops.sampling.samplers import SamplerSpec, get_sampler, v_denoiser, with_classifier_guidance
from stable_audio_ops.sampling.schedules import build_schedule, get_sigmas_polyexponential, t_to_alpha_sigma

log = logging.getLogger(__name__)

# k-diffusion defaults of 0.0.20's sample_k (sigma in Karras units).
K_SIGMA_MIN = 0.01
K_SIGMA_MAX = 100.0
K_RHO = 1.0


def _progress_callback(user_callback: Callable | None, total: int | None, enabled: bool,
                       should_stop: Callable[[], bool] | None = None):
    """A callback that advances a tqdm bar once per sampler step, calls the user's callback, then asks
    ``should_stop`` and raises :class:`GenerationCancelled` when it says yes (every sampler calls its callback
    after each step, so this stops between steps and changes nothing in the numbers of a run that goes on)."""
    bar = tqdm(total=total, disable=not enabled, desc="sampling", leave=False)

    def callback(info: dict) -> None:
        bar.update(1)
        if user_callback is not None:
            user_callback(info)
        _check_stop(should_stop, info.get("i"))

    return callback, bar


def _check_stop(should_stop: Callable[[], bool] | None, step: Any = None) -> None:
    if should_stop is not None and should_stop():
        after = f" after step {int(step) + 1}" if step is not None else " before the first step"
        raise GenerationCancelled(f"generation cancelled{after}: should_stop() returned True")


def _t_space_level(value: float) -> float:
    """Noise level for t-space samplers: 0 < level <= 1 (1 = start from pure noise)."""
    if value <= 0:
        raise ValueError(f"noise level must be > 0, got {value}")
    return min(float(value), 1.0)


@torch.no_grad()
def sample_diffusion(
    model: Callable[..., Any],
    noise: torch.Tensor,
    cond_inputs: dict[str, Any],
    diffusion_objective: str,
    steps: int,
    cfg_scale: float = 1.0,
    *,
    pretransform: Any = None,
    dist_shift: Any = None,
    sampler_type: str | None = None,
    batch_cfg: bool = True,
    rescale_cfg: bool = False,
    apg_scale: float = 1.0,
    init_data: torch.Tensor | None = None,
    init_noise_level: float = 1.0,
    sigma_min: float = K_SIGMA_MIN,
    sigma_max: float | None = None,
    rho: float = K_RHO,
    callback: Callable[[dict], None] | None = None,
    cond_fn: Callable[..., torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    sampler_options: dict[str, Any] | None = None,
    decode: bool = True,
    progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
    **model_kwargs: Any,
) -> torch.Tensor:
    """Run one sampler from ``noise`` (``[B, C, T]``) and return latents, or audio when ``decode``.

    ``model`` is the backbone wrapper (``ConditionedDiffusionModelWrapper.model``); it is called as
    ``model(x, t, **cond_inputs, cfg_scale=..., batch_cfg=..., rescale_cfg=..., apg_scale=...,
    **model_kwargs)`` (``model_kwargs`` carries options such as ``cfg_interval`` or ``scale_phi``).

    ``sampler_type=None`` picks the objective's default (v and rectified_flow: ``euler``,
    rf_denoiser: ``pingpong``). How the noise level is set:

    - k-diffusion samplers (v): sigmas polyexponential from ``sigma_max`` (default 100; with init
      data ``init_noise_level``) down to ``sigma_min``, ``x = init + noise * sigma_max``;
    - v ``euler`` / ``v-ddim*`` and the rectified-flow samplers work in t in (0, 1]: with init data
      ``x`` mixes ``init`` and ``noise`` at ``t = init_noise_level`` (v: cos/sin weights,
      flow: ``(1 - t) init + t noise``).

    ``sampler_options`` go to the sampler function (e.g. ``eta``, ``s_noise``, ``order``);
    ``generator`` feeds stochastic samplers. ``should_stop`` (no arguments) is asked before the first step
    and after every step; when it returns True, :class:`~stable_audio_ops.errors.GenerationCancelled` is
    raised (the server stops a batch nobody waits for any more).
    """
    spec: SamplerSpec = get_sampler(diffusion_objective, sampler_type)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = noise.device
    bound = functools.partial(model, **cond_inputs, cfg_scale=cfg_scale, batch_cfg=batch_cfg,
                              rescale_cfg=rescale_cfg, apg_scale=apg_scale, **model_kwargs)
    options = {**spec.options, **(sampler_options or {})}
    if "generator" in inspect.signature(spec.fn).parameters:  # stochastic samplers and options (eta, churn)
        options.setdefault("generator", generator)
    if cond_fn is not None and not spec.family.startswith("k"):
        raise ValueError(f"cond_fn (classifier guidance) needs a k-diffusion sampler; {spec.name!r} is not one")

    total = steps if spec.family not in ("k-fast", "k-adaptive") else None
    _check_stop(should_stop)
    step_callback, bar = _progress_callback(callback, total, progress, should_stop)
    try:
        if spec.family.startswith("k"):
            level = float(init_noise_level) if init_data is not None else float(sigma_max or K_SIGMA_MAX)
            sigmas = get_sigmas_polyexponential(steps, sigma_min, level, rho, device=device)
            x = noise * sigmas[0]
            if init_data is not None:
                x = init_data + x
            denoise = v_denoiser(bound)
            if cond_fn is not None:
                denoise = with_classifier_guidance(denoise, cond_fn)
            if spec.family == "k":
                sampled = spec.fn(denoise, x, sigmas, callback=step_callback, **options)
            elif spec.family == "k-fast":
                sampled = spec.fn(denoise, x, sigma_min, level, steps, callback=step_callback, **options)
            else:
                sampled = spec.fn(denoise, x, sigma_min, level, callback=step_callback, **options)
        else:
            level = _t_space_level(init_noise_level if init_data is not None else (sigma_max or 1.0))
            x = noise
            if init_data is not None:
                if spec.family == "rf":
                    x = init_data * (1 - level) + noise * level
                else:
                    alpha, sigma = t_to_alpha_sigma(torch.tensor(level))
                    x = init_data * alpha + noise * sigma
            shift = None if spec.family == "v-linear" else dist_shift
            ts = build_schedule(steps, sigma_max=level, dist_shift=shift, seq_len=noise.shape[-1],
                                include_endpoint=spec.family == "rf", device=device)
            sampled = spec.fn(bound, x, ts, callback=step_callback, **options)
    finally:
        bar.close()

    if decode and pretransform is not None:
        sampled = pretransform.decode(sampled.to(_pretransform_dtype(pretransform)))
    return sampled


def _pretransform_dtype(pretransform: torch.nn.Module) -> torch.dtype:
    """The dtype a pretransform computes in; signal pretransforms (wavelet, patched) may hold no
    parameters at all, only filter buffers, or nothing (then float32)."""
    tensor = next(pretransform.parameters(), None)
    if tensor is None:
        tensor = next(pretransform.buffers(), None)
    return tensor.dtype if tensor is not None else torch.float32


def _resolve_seed(seed: int) -> int:
    if seed == -1:
        seed = secrets.randbelow(2**32 - 1)
        log.info("seed: %d", seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be -1 (random) or a non-negative integer, got {seed}")
    return int(seed)


@contextlib.contextmanager
def _exact_matmuls() -> Iterator[None]:
    """Disable TF32 / reduced-precision reductions (as upstream) and restore the switches afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction, torch.backends.cudnn.benchmark) = saved


def _reuse_step_invariants(net: Callable[..., torch.Tensor]) -> contextlib.AbstractContextManager:
    """The backbone's per-generation cache of conditioning-only work (the DiT has one), else nothing.
    ``net`` may be a plain function (the unconditional call adapter), which has no cache."""
    for module in net.modules() if isinstance(net, torch.nn.Module) else ():
        if hasattr(module, "reuse_step_invariants"):
            return module.reuse_step_invariants()
    return contextlib.nullcontext()


PRECISIONS = ("fp32", "bf16")


class _AutocastBackbone(torch.nn.Module):
    """Calls ``net`` under bfloat16 autocast and hands the sampler float32 back.

    A module (not a closure) so that ``_reuse_step_invariants`` still finds a module backbone's step cache.
    """

    def __init__(self, net: Callable[..., torch.Tensor]):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = self.net(x, *args, **kwargs)
        return out.float()


def _with_precision(net: Any, precision: str) -> Any:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return net
    return _AutocastBackbone(net)


def _cast(inputs: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    return {k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in inputs.items()}


def _latent_length(model: Any, sample_size: int) -> int:
    pretransform = getattr(model, "pretransform", None)
    length = sample_size // pretransform.downsampling_ratio if pretransform is not None else sample_size
    if length < 1:
        raise ValueError(f"sample_size {sample_size} is shorter than one latent frame")
    return length


def _audio_io_channels(model: Any) -> int:
    pretransform = getattr(model, "pretransform", None)
    return pretransform.io_channels if pretransform is not None else model.io_channels


def _encode_audio(model: Any, audio_pair: tuple[int, Any], sample_size: int, batch_size: int,
                  device: str | torch.device) -> torch.Tensor:
    """``(sample_rate, audio)`` -> model-domain ``[B, C, T]``: resample, pad/crop, channels, encode, batch."""
    if not (isinstance(audio_pair, (tuple, list)) and len(audio_pair) == 2):
        raise TypeError("audio must be given as a (sample_rate, audio) pair")
    in_sr, audio = audio_pair
    audio = prepare_audio(audio, in_sr=in_sr, target_sr=model.sample_rate, target_length=sample_size,
                          target_channels=_audio_io_channels(model), device=device)
    pretransform = getattr(model, "pretransform", None)
    if pretransform is not None:
        audio = pretransform.encode(audio.to(_pretransform_dtype(pretransform)))
    if audio.shape[0] == 1:
        audio = audio.repeat(batch_size, 1, 1)
    elif audio.shape[0] != batch_size:
        raise ValueError(f"audio has batch size {audio.shape[0]}; expected 1 or batch_size={batch_size}")
    return audio


def _conditioning_inputs(model, conditioning, conditioning_tensors, negative_conditioning,
                         negative_conditioning_tensors, device, extra: dict | None = None):
    """Run the conditioners and merge positive + negative model inputs (negative keys are prefixed)."""
    if conditioning is None and conditioning_tensors is None:
        raise ValueError("provide either conditioning (one metadata dict per batch item) or conditioning_tensors")
    if conditioning_tensors is None:
        conditioning_tensors = model.conditioner(conditioning, device)
    conditioning_tensors = {**conditioning_tensors, **(extra or {})}
    inputs = model.get_conditioning_inputs(conditioning_tensors)
    if negative_conditioning is not None or negative_conditioning_tensors is not None:
        if negative_conditioning_tensors is None:
            negative_conditioning_tensors = model.conditioner(negative_conditioning, device)
        negative_conditioning_tensors = {**negative_conditioning_tensors, **(extra or {})}
        inputs = {**inputs, **model.get_conditioning_inputs(negative_conditioning_tensors, negative=True)}
    return inputs


def _trim_to_seconds_total(audio: torch.Tensor, conditioning: list[dict] | None, sample_rate: int) -> torch.Tensor:
    """Cut decoded audio to the longest ``seconds_total`` in the batch (the model pads the rest with silence)."""
    totals = [float(md["seconds_total"]) for md in (conditioning or []) if "seconds_total" in md]
    if not totals:
        return audio
    return audio[..., : max(1, math.ceil(max(totals) * sample_rate))]


def _initial_noise(model, seed: int, noise: torch.Tensor | None, batch_size: int, latent_length: int,
                   device: str | torch.device) -> tuple[torch.Tensor, torch.Generator]:
    """Seed everything and draw the initial noise (before anything else consumes randomness, as upstream).

    The noise comes from a generator seeded with ``seed``, which gives the same numbers as upstream's
    ``torch.manual_seed(seed); torch.randn(...)``; the global RNG is seeded too, so components that
    draw from it (VAE sampling when init audio is encoded) are reproducible.
    """
    seed = _resolve_seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = (batch_size, model.io_channels, latent_length)
    if noise is not None and tuple(noise.shape) != shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {shape}")
    drawn = torch.randn(shape, generator=generator, device=device)
    # Drawn even when the caller brings its noise (the server draws each item's itself): the generator then
    # stands where upstream's RNG stands after the noise, so a stochastic sampler (the SDE samplers' Brownian
    # tree seed) continues from the same state and a seed gives the same audio either way.
    return (drawn if noise is None else noise), generator


def _run(model, *, steps, cfg_scale, cond_inputs, noise, generator, device, conditioning, init_audio, sample_size,
         batch_size, init_noise_level, return_latents, trim_to_seconds_total, apg_scale, dist_shift, progress,
         sampler_kwargs, backbone=None, precision="fp32"):
    """Shared tail of the generate functions: init audio encoding, dtype casts, sampling, decoding, trimming.

    Runs after the noise was drawn and the conditioning computed, so the global RNG is consumed in the
    same order in every generate function (VAE sampling of the init audio comes last). ``backbone``
    replaces ``model.model`` as the network the sampler calls.
    """
    init_data = None
    if init_audio is not None:
        init_data = _encode_audio(model, init_audio, sample_size, batch_size, device)
    model_dtype = next(model.model.parameters()).dtype
    noise = noise.to(device=device, dtype=model_dtype)
    cond_inputs = _cast(cond_inputs, model_dtype)
    if init_data is not None:
        init_data = init_data.to(model_dtype)
    sampler_kwargs.setdefault("generator", generator)
    net = _with_precision(backbone if backbone is not None else model.model, precision)
    with _exact_matmuls(), _reuse_step_invariants(net):
        out = sample_diffusion(
            net, noise, cond_inputs, model.diffusion_objective, steps, cfg_scale,
            pretransform=getattr(model, "pretransform", None),
            dist_shift=dist_shift if dist_shift is not None else getattr(model, "sampling_dist_shift", None),
            batch_cfg=True, rescale_cfg=True, apg_scale=apg_scale,
            init_data=init_data, init_noise_level=init_noise_level,
            decode=not return_latents, progress=progress, **sampler_kwargs,
        )
    if trim_to_seconds_total and not return_latents:
        out = _trim_to_seconds_total(out, conditioning, model.sample_rate)
    return out


def generate_diffusion_cond(
    model: Any,
    steps: int = 250,
    cfg_scale: float = DEFAULT_CFG_SCALE,
    conditioning: list[dict] | None = None,
    conditioning_tensors: dict | None = None,
    negative_conditioning: list[dict] | None = None,
    negative_conditioning_tensors: dict | None = None,
    batch_size: int = 1,
    sample_size: int = 2097152,
    sample_rate: int | None = None,
    seed: int = -1,
    device: str | torch.device = "cpu",
    init_audio: tuple[int, Any] | None = None,
    init_noise_level: float = 1.0,
    return_latents: bool = False,
    *,
    apg_scale: float = 1.0,
    dist_shift: Any = None,
    noise: torch.Tensor | None = None,
    trim_to_seconds_total: bool = False,
    progress: bool = True,
    precision: str = "fp32",
    **sampler_kwargs: Any,
) -> torch.Tensor:
    """Generate ``[batch, channels, samples]`` audio (or latents) from a conditioned diffusion model.

    ``conditioning`` holds one metadata dict per batch item (e.g. ``{"prompt": ..., "seconds_start": 0,
    "seconds_total": 10}``); ``conditioning_tensors`` skips the conditioners. ``sample_size`` is in audio
    samples (latent length = ``sample_size // downsampling_ratio``); ``sample_rate`` is accepted for
    upstream compatibility and ignored (the model's rate is used). ``seed=-1`` draws a random seed and
    logs it. ``init_audio=(sample_rate, audio)`` turns on audio-to-audio at ``init_noise_level``.
    ``noise`` replaces the seeded initial noise (shape ``[B, io_channels, latent_length]``).
    ``trim_to_seconds_total`` cuts decoded audio to the longest ``seconds_total`` of the batch.
    ``precision="bf16"`` runs the backbone under bfloat16 autocast (faster on AMX CPUs and GPUs; module docstring).

    Other keywords: ``sampler_type``, ``sigma_min``/``sigma_max``/``rho``, ``callback``, ``should_stop``, ``cond_fn``,
    ``sampler_options``, and model options such as ``cfg_interval`` or ``scale_phi``.
    """
    latent_length = _latent_length(model, sample_size)
    noise, generator = _initial_noise(model, seed, noise, batch_size, latent_length, device)
    cond_inputs = _conditioning_inputs(model, conditioning, conditioning_tensors, negative_conditioning,
                                       negative_conditioning_tensors, device)
    return _run(model, steps=steps, cfg_scale=cfg_scale, cond_inputs=cond_inputs, noise=noise, generator=generator,
                device=device, conditioning=conditioning, init_audio=init_audio, sample_size=sample_size,
                batch_size=batch_size, init_noise_level=init_noise_level, return_latents=return_latents,
                trim_to_seconds_total=trim_to_seconds_total, apg_scale=apg_scale, dist_shift=dist_shift,
                progress=progress, sampler_kwargs=sampler_kwargs, precision=precision)


def build_inpaint_mask(sample_size: int, sample_rate: int, start_seconds: float, end_seconds: float,
                       device: str | torch.device = "cpu") -> torch.Tensor:
    """``[1, sample_size]`` mask: 1 = keep the given audio, 0 over ``[start, end)`` seconds = regenerate."""
    start = min(max(int(start_seconds * sample_rate), 0), sample_size)
    end = min(max(int(end_seconds * sample_rate), 0), sample_size)
    if end < start:
        raise ValueError(f"inpaint mask end ({end_seconds} s) is before its start ({start_seconds} s)")
    mask = torch.ones(1, sample_size, device=device)
    mask[:, start:end] = 0
    return mask


def _latent_mask(mask: Any, sample_size: int, latent_length: int, batch_size: int,
                 device: str | torch.device) -> torch.Tensor:
    """Audio-rate mask (``[n]``, ``[B, n]`` or ``[B, 1, n]``) -> ``[B, 1, latent_length]`` by nearest sampling."""
    mask = as_batched_audio(mask)  # [b, 1, n] float32 (a [B, n] mask arrives as [1, B, n])
    if mask.shape[0] == 1 and mask.shape[1] != 1:
        mask = mask.transpose(0, 1)
    if mask.shape[1] != 1:
        raise ValueError(f"inpaint mask must have one channel, got shape {tuple(mask.shape)}")
    if mask.shape[-1] > sample_size:
        mask = mask[..., :sample_size]
    mask = F.interpolate(mask, size=latent_length, mode="nearest")
    if mask.shape[0] == 1:
        mask = mask.repeat(batch_size, 1, 1)
    elif mask.shape[0] != batch_size:
        raise ValueError(f"inpaint mask has batch size {mask.shape[0]}; expected 1 or batch_size={batch_size}")
    return mask.to(device)


def generate_diffusion_cond_inpaint(
    model: Any,
    steps: int = 250,
    cfg_scale: float = DEFAULT_CFG_SCALE,
    conditioning: list[dict] | None = None,
    conditioning_tensors: dict | None = None,
    negative_conditioning: list[dict] | None = None,
    negative_conditioning_tensors: dict | None = None,
    batch_size: int = 1,
    sample_size: int = 2097152,
    seed: int = -1,
    device: str | torch.device = "cpu",
    init_audio: tuple[int, Any] | None = None,
    init_noise_level: float = 1.0,
    inpaint_audio: tuple[int, Any] | None = None,
    inpaint_mask: Any = None,
    return_latents: bool = False,
    *,
    inpaint_mask_start_seconds: float | None = None,
    inpaint_mask_end_seconds: float | None = None,
    apg_scale: float = 1.0,
    dist_shift: Any = None,
    noise: torch.Tensor | None = None,
    trim_to_seconds_total: bool = False,
    progress: bool = True,
    precision: str = "fp32",
    **sampler_kwargs: Any,
) -> torch.Tensor:
    """Generate with an inpainting model: keep the audio where the mask is 1, regenerate where it is 0.

    ``inpaint_audio=(sample_rate, audio)`` is the audio to keep; ``inpaint_mask`` is audio-rate
    (``[sample_size]`` or ``[batch, sample_size]``), or build it with ``inpaint_mask_start_seconds`` /
    ``inpaint_mask_end_seconds`` (the region to regenerate). The mask and the masked latents reach the
    model as the ``inpaint_mask`` / ``inpaint_masked_input`` conditioning (input concatenation). Without
    inpaint audio both are zeros, which is plain generation. Other arguments as
    :func:`generate_diffusion_cond`.
    """
    latent_length = _latent_length(model, sample_size)
    noise, generator = _initial_noise(model, seed, noise, batch_size, latent_length, device)
    if inpaint_mask_start_seconds is not None or inpaint_mask_end_seconds is not None:
        if inpaint_mask_start_seconds is None or inpaint_mask_end_seconds is None:
            raise ValueError("give both inpaint_mask_start_seconds and inpaint_mask_end_seconds")
        inpaint_mask = build_inpaint_mask(sample_size, model.sample_rate, inpaint_mask_start_seconds,
                                          inpaint_mask_end_seconds)
    if inpaint_mask is None:
        mask = torch.zeros(batch_size, 1, latent_length, device=device)
    else:
        mask = _latent_mask(inpaint_mask, sample_size, latent_length, batch_size, device)

    if inpaint_audio is not None:
        masked_input = _encode_audio(model, inpaint_audio, sample_size, batch_size, device) * mask
    else:
        masked_input = torch.zeros(batch_size, model.io_channels, latent_length, device=device)

    extra = {"inpaint_mask": [mask], "inpaint_masked_input": [masked_input]}
    cond_inputs = _conditioning_inputs(model, conditioning, conditioning_tensors, negative_conditioning,
                                       negative_conditioning_tensors, device, extra=extra)
    return _run(model, steps=steps, cfg_scale=cfg_scale, cond_inputs=cond_inputs, noise=noise, generator=generator,
                device=device, conditioning=conditioning, init_audio=init_audio, sample_size=sample_size,
                batch_size=batch_size, init_noise_level=init_noise_level, return_latents=return_latents,
                trim_to_seconds_total=trim_to_seconds_total, apg_scale=apg_scale, dist_shift=dist_shift,
                progress=progress, sampler_kwargs=sampler_kwargs, precision=precision)


def _unconditional(backbone: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``backbone(x, t)`` as the sampler calls a guided model: the guidance options (``cfg_scale``,
    ``batch_cfg``, ...) mean nothing without conditioning and are dropped."""

    def call(x: torch.Tensor, t: torch.Tensor, **_guidance: Any) -> torch.Tensor:
        return backbone(x, t)

    return call


def generate_diffusion_uncond(
    model: Any,
    steps: int = 250,
    batch_size: int = 1,
    sample_size: int = 2097152,
    seed: int = -1,
    device: str | torch.device = "cpu",
    init_audio: tuple[int, Any] | None = None,
    init_noise_level: float = 1.0,
    return_latents: bool = False,
    *,
    noise: torch.Tensor | None = None,
    progress: bool = True,
    precision: str = "fp32",
    **sampler_kwargs: Any,
) -> torch.Tensor:
    """Generate ``[batch, channels, samples]`` audio (or latents) with an unconditional diffusion model
    (``diffusion_uncond``: ADP U-Net or DiT backbone, with or without a pretransform), upstream's
    ``generate_diffusion_uncond``.

    Same seeding, init audio (audio-to-audio at ``init_noise_level``), samplers and decoding as
    :func:`generate_diffusion_cond`, without conditioning or guidance.

    Difference from stable-audio-tools 0.0.20, where this function cannot run: it reads
    ``model.diffusion_objective``, which the unconditional wrapper lacks there, and passes its arguments
    to the sampler in the wrong order. Here the wrapper declares its objective (always ``v``) and the
    sampler gets the schedule and noise level that ``generate_diffusion_cond`` would use.
    """
    latent_length = _latent_length(model, sample_size)
    noise, generator = _initial_noise(model, seed, noise, batch_size, latent_length, device)
    return _run(model, steps=steps, cfg_scale=1.0, cond_inputs={}, noise=noise, generator=generator, device=device,
                conditioning=None, init_audio=init_audio, sample_size=sample_size, batch_size=batch_size,
                init_noise_level=init_noise_level, return_latents=return_latents, trim_to_seconds_total=False,
                apg_scale=1.0, dist_shift=None, progress=progress, sampler_kwargs=sampler_kwargs, precision=precision,
                backbone=_unconditional(model.model))
