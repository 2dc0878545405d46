"""Snake activation: eager by default (upstream's numbers bitwise), compiled on request within tolerance."""

from __future__ import annotations

import shutil

import pytest
import torch

from stable_audio_ops.models import blocks
from stable_audio_ops.models.blocks import SnakeBeta, snake_beta, use_compiled_snake


@pytest.fixture()
def restore_snake():
    yield
    blocks._snake.clear()  # back to the default, read from SAO_COMPILE_SNAKE on next use


def _snake_and_grads(module: SnakeBeta, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = module(x)
    out.square().sum().backward()
    return out.detach(), x.grad, module.alpha.grad, module.beta.grad


def test_default_is_the_eager_formula_bitwise(monkeypatch, restore_snake) -> None:
    monkeypatch.delenv(blocks.COMPILE_SNAKE_ENV, raising=False)
    blocks._snake.clear()
    module = SnakeBeta(3)
    with torch.no_grad():
        module.alpha.uniform_(-1, 1)
        module.beta.uniform_(-1, 1)
    x = torch.randn(2, 3, 50)
    expected = snake_beta(x, module.alpha.exp()[None, :, None], module.beta.exp()[None, :, None])
    assert torch.equal(module(x), expected)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="torch.compile needs a C compiler")
def test_compiled_snake_matches_eager_within_the_parity_tolerance(restore_snake) -> None:
    torch.manual_seed(0)
    module = SnakeBeta(4)
    with torch.no_grad():
        module.alpha.uniform_(-1, 1)
        module.beta.uniform_(-1, 1)
    x = torch.randn(2, 4, 300)
    use_compiled_snake(False)
    eager = _snake_and_grads(module, x)
    module.zero_grad()
    use_compiled_snake(True)
    assert blocks._snake["fn"] is not snake_beta  # really the compiled function
    compiled = _snake_and_grads(module, x)
    for name, a, b in zip(("output", "grad x", "grad alpha", "grad beta"), eager, compiled, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), name


def test_compiled_snake_without_a_cxx_compiler_warns_and_stays_eager(monkeypatch, tmp_path) -> None:
    from stable_audio_ops.models import blocks

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler anywhere on PATH
    try:
        with pytest.warns(UserWarning, match="needs a C\\+\\+ compiler"):
            assert blocks.use_compiled_snake(True) is False
        assert blocks._snake_fn() is blocks.snake_beta
    finally:
        blocks.use_compiled_snake(False)
