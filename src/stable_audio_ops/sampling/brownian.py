"""Brownian-tree noise for the SDE samplers, drawn the way k-diffusion 0.1.1 draws it.

Why a tree and not fresh Gaussians: stable-audio-tools 0.0.20 runs ``dpmpp-2m-sde`` / ``dpmpp-3m-sde``
through k-diffusion, whose noise for the step ``sigma -> sigma_next`` is the increment of ONE Brownian
path ``W`` on ``[sigma_min, sigma_max]`` (a ``torchsde.BrownianTree``), scaled to unit variance:
``(W(sigma) - W(sigma_next)) / sqrt(sigma - sigma_next)``. The path is fixed by one integer entropy, which
k-diffusion draws from the torch RNG right when the sampler starts (after the initial noise). Drawing
that integer from the same generator that drew the initial noise gives, for the same seed, the same
audio as upstream. A side benefit users of k-diffusion rely on: the same seed at a different step count
samples the same path, so results change smoothly with ``steps``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# k-diffusion draws the tree's entropy with torch.randint(0, 2 ** 63 - 1, []).
ENTROPY_HIGH = 2**63 - 1


def draw_entropy(generator: torch.Generator | None = None) -> int:
    """The tree's seed: one CPU ``randint`` as k-diffusion draws it, from ``generator`` when it is a CPU one.

    Upstream always draws it from the global CPU RNG, which ``torch.manual_seed(seed)`` seeded and, on
    CPU, the initial noise then advanced. A CPU ``generator`` that drew the initial noise is in that same
    state. With a GPU generator (or none) the global CPU RNG is used, as upstream does: on a GPU the noise
    came from the GPU's RNG, so the CPU one is still right after ``manual_seed``.
    """
    source = generator if generator is not None and generator.device.type == "cpu" else None
    return int(torch.randint(0, ENTROPY_HIGH, [], generator=source).item())


def brownian_tree_noise(x: torch.Tensor, sigma_min: float | torch.Tensor, sigma_max: float | torch.Tensor, *,
                        seed: int | None = None, generator: torch.Generator | None = None) -> NoiseSampler:
    """A noise sampler ``(sigma, sigma_next) -> unit-variance noise shaped like x`` over one Brownian path.

    The path lives on ``[sigma_min, sigma_max]`` (the schedule's smallest positive and largest sigma,
    as k-diffusion passes them). ``seed`` fixes it; without one it is drawn from ``generator`` (see
    :func:`draw_entropy`). Increments over disjoint intervals are independent and
    ``W(b) - W(a) ~ N(0, b - a)``, so each call returns a standard normal tensor however the steps are
    spaced; asking twice for the same interval returns the same noise.
    """
    import torchsde  # only the SDE samplers need it

    lo, hi = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
    if not bool(lo < hi):
        raise ValueError(f"Brownian tree needs sigma_min < sigma_max, got {float(lo)} and {float(hi)}")
    entropy = draw_entropy(generator) if seed is None else int(seed)
    tree = torchsde.BrownianTree(lo, torch.zeros_like(x), hi, entropy=entropy)

    def sample(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        a, b = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        # The tree answers W(upper) - W(lower); a step runs downwards in sigma, so the sign flips.
        lower, upper, sign = (a, b, 1) if a < b else (b, a, -1)
        with warnings.catch_warnings():
            # float32 sigmas land a hair outside the float64 ends of the path (0.0099999998 < 0.01);
            # torchsde warns on every such call and answers correctly, as it does under k-diffusion.
            warnings.filterwarnings("ignore", message="Should have t[ab]", category=UserWarning)
            increment = tree(lower, upper)
        return increment * sign / (b - a).abs().sqrt()

    return sample


__all__ = ["ENTROPY_HIGH", "NoiseSampler", "brownian_tree_noise", "draw_entropy"]
