"""The Brownian-tree noise of the SDE samplers: seeded like k-diffusion, and a Brownian path.

What a user relies on: the same seed gives the same audio (so every call is deterministic in its seed),
each step's noise is standard normal whatever the step size, and the steps' noises are independent.
"""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.sampling.brownian import ENTROPY_HIGH, brownian_tree_noise, draw_entropy

X = torch.zeros(40_000)  # shape only; many elements make the statistics tight


def _increment(noise, a: float, b: float) -> torch.Tensor:
    """W(b) - W(a) for a < b, from the sampler's unit-variance answer for the step b -> a."""
    return noise(torch.tensor(b), torch.tensor(a)) * (b - a) ** 0.5 * -1


def test_the_same_seed_gives_the_same_noise_and_another_seed_other_noise():
    a = brownian_tree_noise(X, 0.01, 100.0, seed=5)
    b = brownian_tree_noise(X, 0.01, 100.0, seed=5)
    c = brownian_tree_noise(X, 0.01, 100.0, seed=6)
    s, s_next = torch.tensor(3.0), torch.tensor(1.5)
    assert torch.equal(a(s, s_next), b(s, s_next))
    assert torch.equal(a(s, s_next), a(s, s_next))  # asking again for a step gives the same noise
    assert not torch.allclose(a(s, s_next), c(s, s_next))


def test_the_seed_is_drawn_from_the_generator_as_k_diffusion_draws_it_from_the_global_rng():
    torch.manual_seed(11)
    upstream = torch.randint(0, ENTROPY_HIGH, []).item()
    assert draw_entropy(torch.Generator().manual_seed(11)) == upstream
    from_generator = brownian_tree_noise(X, 0.01, 100.0, generator=torch.Generator().manual_seed(11))
    from_seed = brownian_tree_noise(X, 0.01, 100.0, seed=upstream)
    assert torch.equal(from_generator(torch.tensor(2.0), torch.tensor(1.0)),
                       from_seed(torch.tensor(2.0), torch.tensor(1.0)))


@pytest.mark.parametrize(("a", "b"), [(0.01, 0.02), (0.5, 3.0), (20.0, 100.0)])
def test_each_step_is_standard_normal_whatever_its_length(a, b):
    noise = brownian_tree_noise(X, 0.01, 100.0, seed=1)(torch.tensor(b), torch.tensor(a))
    assert abs(noise.mean().item()) < 0.03
    assert abs(noise.std().item() - 1.0) < 0.03  # i.e. Var(W(b) - W(a)) = b - a


def test_increments_add_up_along_one_path_and_disjoint_ones_are_independent():
    noise = brownian_tree_noise(X, 0.01, 100.0, seed=2)
    whole = _increment(noise, 0.5, 8.0)
    parts = [_increment(noise, lo, hi) for lo, hi in ((0.5, 2.0), (2.0, 8.0))]
    torch.testing.assert_close(parts[0] + parts[1], whole, rtol=0, atol=1e-4)
    correlation = torch.corrcoef(torch.stack(parts))[0, 1].item()
    assert abs(correlation) < 0.03


def test_an_empty_path_is_an_error_naming_the_ends():
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        brownian_tree_noise(X, 1.0, 1.0, seed=0)
