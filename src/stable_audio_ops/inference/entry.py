"""One way to generate: the table from model type to its generate function, and :func:`generate`.

The generate command, the HTTP server, the MLflow pyfunc and the evaluation pipeline all call
:func:`generate` with the model type from the model's config, instead of each choosing a function by name.
Their shared defaults (steps, ``cfg_scale``, seed) are :data:`GENERATION_DEFAULTS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

import torch

from stable_audio_ops.errors import NonFiniteOutputError, UnknownTypeError
from stable_audio_ops.inference.defaults import DEFAULT_CFG_SCALE, GENERATION_DEFAULTS, GenerationDefaults
from stable_audio_ops.inference.generation import (
    generate_diffusion_cond,
    generate_diffusion_cond_inpaint,
    generate_diffusion_uncond,
)
from stable_audio_ops.inference.lm_generation import generate_lm_audio

GENERATORS: dict[str, Callable[..., torch.Tensor]] = {
    "diffusion_cond": generate_diffusion_cond,
    "diffusion_cond_inpaint": generate_diffusion_cond_inpaint,
    "diffusion_uncond": generate_diffusion_uncond,
    "lm": generate_lm_audio,
}
# Model types that take prompts / metadata conditioning (what the server, the pyfunc and the generate command use).
CONDITIONED_MODEL_TYPES = ("diffusion_cond", "diffusion_cond_inpaint")


@cache
def _named_parameters(fn: Callable[..., Any]) -> frozenset[str]:
    """The parameters ``fn`` names (not its ``**kwargs``, which carry sampler options)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds)


@cache
def _takes_options(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes ``**kwargs`` (the diffusion functions' sampler options; an lm's takes none)."""
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def generator_for(model_type: str) -> Callable[..., torch.Tensor]:
    """The generate function of ``model_type``; an unknown type raises an error listing the known ones."""
    try:
        return GENERATORS[model_type]
    except KeyError:
        raise UnknownTypeError("", "model_type", f"{model_type!r} models cannot generate audio; generate functions "
                               f"exist for: {', '.join(GENERATORS)}") from None


def generate(model: Any, model_type: str, **params: Any) -> torch.Tensor:
    """Generate with ``model`` through the function :data:`GENERATORS` holds for ``model_type``.

    ``params`` are that function's arguments (``steps``, ``cfg_scale``, ``conditioning``, ``sample_size``,
    ``seed``, ``device``, ..., plus sampler options such as ``sampler_type``; an ``lm`` model takes
    ``temperature`` / ``top_k`` / ``top_p`` / ``max_gen_len`` instead of steps and sampler options). A parameter that only another
    model type's function takes (e.g. ``inpaint_audio`` for a ``diffusion_cond`` model) raises a
    :class:`ValueError` naming it and the model types that take it, instead of reaching the sampler.
    """
    fn = generator_for(model_type)
    own = _named_parameters(fn)
    foreign: dict[tuple[str, ...], list[str]] = {}  # the model types that take them -> parameter names
    for key in params:
        if key not in own:
            takers = tuple(name for name, other in GENERATORS.items() if key in _named_parameters(other))
            if not takers and not _takes_options(fn):  # e.g. a sampler option for an lm
                takers = ("diffusion (sampler option)",)
            if takers:
                foreign.setdefault(takers, []).append(key)
    if foreign:
        detail = "; ".join(f"{', '.join(keys)} {'is' if len(keys) == 1 else 'are'} for {' / '.join(takers)} models"
                           for takers, keys in foreign.items())
        raise ValueError(f"this is a {model_type} model: {detail}")
    output = fn(model, **params)
    check_finite(output, what="audio" if not params.get("return_latents") else "latents")
    return output


def check_finite(output: torch.Tensor, what: str = "audio") -> None:
    """Raise :class:`NonFiniteOutputError` when ``output`` (batch first) holds NaN or Inf.

    Why here: this is the one function every front end generates through, so no path can write or return
    a file made of NaN (e.g. from a NaN ``cfg_scale`` a library caller passed, or diverged weights). The
    message says which batch items and how many values, so a caller can tell one bad item from a broken model.
    """
    finite = torch.isfinite(output)
    if bool(finite.all()):
        return
    bad_items = [i for i in range(output.shape[0]) if not bool(finite[i].all())] if output.dim() > 0 else []
    nan = int(torch.isnan(output).sum())
    inf = int(torch.isinf(output).sum())
    raise NonFiniteOutputError(
        f"generation produced non-finite {what} ({nan} NaN, {inf} Inf of {output.numel()} values; batch items "
        f"{bad_items}); nothing was written. Check cfg_scale, steps, sampler options and the model's weights")


__all__ = ["CONDITIONED_MODEL_TYPES", "DEFAULT_CFG_SCALE", "GENERATION_DEFAULTS", "GENERATORS", "GenerationDefaults",
           "check_finite", "generate", "generator_for"]
