"""Small building blocks shared by the Oobleck autoencoder: SnakeBeta and weight-normed convolutions.

Why the legacy weight norm: stable-audio-tools checkpoints store weight-normed convolutions as
``weight_g`` / ``weight_v`` (the pre-parametrization API). The newer
``torch.nn.utils.parametrizations.weight_norm`` names them ``parametrizations.weight.original0/1``,
which would not load released checkpoints. The legacy helper is deprecated, so its FutureWarning is
silenced here, locally, instead of in every user's log.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable

import torch
from torch import nn

# Added to beta before dividing, exactly as upstream's SnakeBeta does (keeps beta -> 0 finite).
SNAKE_EPS = 1e-9


def weight_norm(module: nn.Module) -> nn.Module:
    """Legacy weight norm on ``module`` (keys ``weight_g`` / ``weight_v``), its deprecation warning silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.nn\.utils\.weight_norm.*", category=FutureWarning)
        return torch.nn.utils.weight_norm(module)


def wn_conv1d(*args, **kwargs) -> nn.Conv1d:
    """``nn.Conv1d`` with legacy weight norm (state-dict keys ``weight_g``, ``weight_v``, ``bias``)."""
    return weight_norm(nn.Conv1d(*args, **kwargs))


def wn_conv_transpose1d(*args, **kwargs) -> nn.ConvTranspose1d:
    """``nn.ConvTranspose1d`` with legacy weight norm (norm over dim 0 = input channels, as upstream)."""
    return weight_norm(nn.ConvTranspose1d(*args, **kwargs))


def snake_beta(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``x + sin(alpha * x)^2 / (beta + eps)``; alpha/beta already broadcast to ``[1, C, 1]``."""
    return x + (1.0 / (beta + SNAKE_EPS)) * torch.sin(x * alpha).pow(2)


# Which Snake SnakeBeta runs: eager (default, bitwise upstream's numbers), or torch.compile'd. In eager mode
# each of Snake's five elementwise ops (and their backward) is a pass over the full-rate activations: about
# 40 % of an Oobleck training step on CPU. Compiled, forward and backward are each one fused loop: the ae_step
# workload's training step drops to ~0.75x (benchmarks/bench_ae_step.py), outputs differ by ~1e-7 and
# gradients by ~4e-6 relative (SLEEF sin/cos), far inside the parity tolerance (1e-4), but not bitwise and it
# needs a C++ compiler and ~10 s of compilation per process: opt in with SAO_COMPILE_SNAKE=1 or
# use_compiled_snake(True).
COMPILE_SNAKE_ENV = "SAO_COMPILE_SNAKE"
_snake: dict[str, Callable[..., torch.Tensor]] = {}


def use_compiled_snake(enabled: bool) -> bool:
    """Run every SnakeBeta through ``torch.compile(snake_beta)`` (True) or eagerly (False) from now on.

    Returns whether Snake is compiled: without a C++ compiler on PATH (what torch.compile needs on CPU) it
    warns and stays eager, so a config that asks for speed still trains, with the same math."""
    if enabled and not _cxx_compiler():
        warnings.warn("compiled Snake needs a C++ compiler (g++, c++ or clang++ on PATH, or $CXX); none found, "
                      "so Snake runs eagerly (same results, slower)", stacklevel=2)
        enabled = False
    _snake["fn"] = torch.compile(snake_beta, dynamic=True) if enabled else snake_beta
    return enabled


def _cxx_compiler() -> str | None:
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    return next((found for name in candidates if (found := shutil.which(name))), None)


def _snake_fn() -> Callable[..., torch.Tensor]:
    if "fn" not in _snake:
        use_compiled_snake(os.environ.get(COMPILE_SNAKE_ENV, "0") == "1")
    return _snake["fn"]


class SnakeBeta(nn.Module):
    """Periodic activation with a per-channel frequency ``alpha`` and magnitude ``beta`` (BigVGAN).

    With ``alpha_logscale`` (the default, and what Oobleck uses) both parameters are stored as logs,
    initialised to 0, and exponentiated in forward; so a freshly built model computes
    ``x + sin(x)^2``. Parameter names ``alpha``/``beta`` match upstream's state-dict keys.
    """

    def __init__(self, in_features: int, alpha: float = 1.0, alpha_trainable: bool = True,
                 alpha_logscale: bool = True):
        super().__init__()
        self.in_features = in_features
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(in_features) if alpha_logscale else torch.ones(in_features) * alpha
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone())
        self.alpha.requires_grad_(alpha_trainable)
        self.beta.requires_grad_(alpha_trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha[None, :, None]
        beta = self.beta[None, :, None]
        if self.alpha_logscale:
            alpha = alpha.exp()
            beta = beta.exp()
        return _snake_fn()(x, alpha, beta)

    def extra_repr(self) -> str:
        return f"{self.in_features}, alpha_logscale={self.alpha_logscale}"


def make_activation(kind: str, channels: int, antialias: bool = False) -> nn.Module:
    """``"snake"`` -> SnakeBeta, ``"elu"`` -> ELU, ``"none"`` -> Identity; with ``antialias`` wrapped in
    :class:`~stable_audio_ops.models.antialias.AntiAliasedActivation` (upstream's ``alias_free_torch.Activation1d``:
    one more module level, ``.act``, in the state dict)."""
    if antialias:
        from stable_audio_ops.models.antialias import AntiAliasedActivation

        return AntiAliasedActivation(make_activation(kind, channels))
    if kind == "snake":
        return SnakeBeta(channels)
    if kind == "elu":
        return nn.ELU()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {kind!r}; known: elu, none, snake")


def remove_weight_norm_from_model(model: nn.Module) -> nn.Module:
    """Fold every legacy weight norm into a plain ``weight`` (same outputs, faster inference).

    Used for ``--remove-pretransform-weight-norm``; afterwards state-dict keys are ``...weight``
    instead of ``weight_g``/``weight_v``. Modules without weight norm are left alone (upstream raises).
    """
    from torch.nn.utils.weight_norm import WeightNorm

    for module in model.modules():
        if any(isinstance(hook, WeightNorm) for hook in module._forward_pre_hooks.values()):
            torch.nn.utils.remove_weight_norm(module)
    return model
