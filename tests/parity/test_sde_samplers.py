"""Parity of the SDE samplers with k-diffusion 0.1.1, which stable-audio-tools 0.0.20 runs them through.

No stable-audio-tools fixture records an SDE sampler, so tests/fixtures/k_diffusion/sde_samplers.safetensors
holds k-diffusion's own outputs (its sampling code, VDenoiser and torchsde's Brownian tree, seeded as
``generate_diffusion_cond`` seeds; see make_sde_fixture.py there) for an analytic v model. Same seed, same
numbers: the initial noise and the Brownian path both come from our seeded generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stable_audio_ops.inference.generation import sample_diffusion
from tests.fixtures.k_diffusion.make_sde_fixture import v_model  # the fixture's analytic model

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "k_diffusion"
META = json.loads((FIXTURE / "sde_samplers.json").read_text())
TENSORS = load_file(str(FIXTURE / "sde_samplers.safetensors"))


def _generate(case: dict, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed and draw the noise as the generate functions do, then sample as ``sample_diffusion`` does."""
    generator = torch.Generator().manual_seed(case["seed"] if seed is None else seed)
    noise = torch.randn(META["model"]["shape"], generator=generator)
    out = sample_diffusion(v_model, noise, {}, "v", case["steps"], 1.0, sampler_type=case["sampler_type"],
                           sigma_min=case["sigma_min"], sigma_max=case["sigma_max"], rho=case["rho"],
                           generator=generator, decode=False)
    return noise, out


@pytest.mark.parametrize("name", ["dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_sde_sampler_matches_k_diffusion_for_the_same_seed(name):
    noise, out = _generate(META[name])
    torch.testing.assert_close(noise, TENSORS[f"{name}.noise"], rtol=0, atol=0)
    torch.testing.assert_close(out, TENSORS[f"{name}.output"], rtol=1e-5, atol=1e-5)


def test_another_seed_gives_other_audio():
    _, out = _generate(META["dpmpp_3m_sde"], seed=META["dpmpp_3m_sde"]["seed"] + 1)
    assert (out - TENSORS["dpmpp_3m_sde.output"]).abs().max() > 0.05
