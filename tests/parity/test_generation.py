"""Parity with stable-audio-tools 0.0.20 for full latent generation (dit_latent_v, dit_latent_rf).

Each run goes through the public entry point ``generate_diffusion_cond`` with the recorded initial
noise (``<run>.noise``, never an RNG). A forward hook on the backbone (``model.model``) records every
call, so ``trace.t`` checks the schedule, ``trace.x`` the sampler's state updates and
``trace.model_out`` the guided backbone output, step by step; then the latents and the decoded audio.
One test per output, so a failure names where the trajectories diverge.
"""

from __future__ import annotations

import functools

import pytest
import torch

from stable_audio_ops.inference.generation import generate_diffusion_cond, sample_diffusion
from tests.parity.harness import load_case, load_model

RUNS = {
    "dit_latent_v": ("default_euler", "dpmpp2m_vanilla_cfg", "default_euler_cfg1"),
    "dit_latent_rf": ("euler", "euler_apg", "dpmpp"),
}
PARTS = ("trace.t", "trace.x", "trace.model_out", "latents", "audio")
CASES = [(case, run, part) for case, runs in RUNS.items() for run in runs for part in PARTS]


@functools.cache
def _case(name: str):
    return load_case(name)


@functools.cache
def _model(name: str):
    return load_model(_case(name)).requires_grad_(False)


class _Trace:
    """Forward hook on the backbone: records (x, t, output) of every call, in call order."""

    def __init__(self) -> None:
        self.x: list[torch.Tensor] = []
        self.t: list[torch.Tensor] = []
        self.out: list[torch.Tensor] = []

    def __call__(self, module, args, output) -> None:
        x, t = args[0], args[1]
        self.x.append(x.detach().clone())
        self.t.append(t.detach().clone().expand(x.shape[0]))
        self.out.append(output.detach().clone())

    def stacked(self) -> dict[str, torch.Tensor]:
        return {"trace.x": torch.stack(self.x), "trace.t": torch.stack(self.t),
                "trace.model_out": torch.stack(self.out)}


@functools.cache
def _computed(name: str, run: str) -> dict[str, torch.Tensor]:
    case, model = _case(name), _model(name)
    spec = case.params["runs"][run]
    trace = _Trace()
    handle = model.model.register_forward_hook(trace)
    try:
        with torch.no_grad():
            latents = generate_diffusion_cond(
                model, steps=spec["steps"], cfg_scale=spec["cfg_scale"], conditioning=case.params["metadata"],
                batch_size=len(case.params["metadata"]), sample_size=case.params["sample_size"], seed=spec["seed"],
                device="cpu", noise=case.inputs[f"{run}.noise"], return_latents=True, progress=False,
                **spec["kwargs"],
            )
    finally:
        handle.remove()
    with torch.no_grad():
        audio = model.pretransform.decode(latents)
    return {"latents": latents, "audio": audio, **trace.stacked()}


@pytest.mark.parametrize("name,run,part", CASES, ids=[f"{c}/{r}.{p}" for c, r, p in CASES])
def test_generation_matches_reference(name, run, part):
    _case(name).assert_close(f"{run}.{part}", _computed(name, run)[part])


@pytest.mark.parametrize("name", sorted(RUNS))
def test_decoding_inside_generate_equals_decoding_the_latents(name):
    """generate(..., return_latents=False) is pretransform.decode of the same latents (as upstream checks)."""
    case, model = _case(name), _model(name)
    run = RUNS[name][0]
    spec = case.params["runs"][run]
    with torch.no_grad():
        audio = generate_diffusion_cond(
            model, steps=spec["steps"], cfg_scale=spec["cfg_scale"], conditioning=case.params["metadata"],
            batch_size=2, sample_size=case.params["sample_size"], noise=case.inputs[f"{run}.noise"],
            progress=False, **spec["kwargs"],
        )
    torch.testing.assert_close(audio, _computed(name, run)["audio"], rtol=0, atol=0)


def test_sample_diffusion_called_as_upstream_reproduces_the_latents():
    """The call case.json spells out: sample_diffusion(model.model, noise, cond_inputs, objective, ...)."""
    case, model = _case("dit_latent_rf"), _model("dit_latent_rf")
    with torch.no_grad():
        cond = model.conditioner(case.params["metadata"], "cpu")
        latents = sample_diffusion(
            model.model, case.inputs["dpmpp.noise"], model.get_conditioning_inputs(cond), model.diffusion_objective,
            8, 4.0, pretransform=model.pretransform, dist_shift=model.sampling_dist_shift, sampler_type="dpmpp",
            batch_cfg=True, rescale_cfg=True, apg_scale=0.0, decode=False,
        )
    case.assert_close("dpmpp.latents", latents)
