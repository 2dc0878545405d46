"""The model config a latent diffusion model trains with, derived from its own config and the trained autoencoder.

Why a function of its own: the DiT config shipped in ``model_configs/`` cannot know the autoencoder it will
sit on (its latent width, sample rate, channels, the scale of its latents). Copying those by hand drifts;
deriving them here means the pretransform that trains IS the autoencoder that encoded the latents.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from stable_audio_ops.errors import ConfigError

# latent_scale values: "auto" = the latents' standard deviation; a number = that scale; None = the config's own
AUTO_SCALE = "auto"
# diffusion_uncond backbones whose channel count is not ``model.config.in_channels``
UNCOND_CHANNELS_KEY = {"DAU1d": "io_channels"}


def pretransform_scale(latent_scale: float | str | None, latent_std: float | None) -> float | None:
    """The pretransform's ``scale``: ``"auto"`` -> the latents' std (rounded; 1.0 if it is 0), a number -> itself,
    None -> None (keep the config's)."""
    if latent_scale is None:
        return None
    if latent_scale == AUTO_SCALE:
        if latent_std is None:
            raise ConfigError("", "latent_scale", "latent_scale 'auto' needs the latents' std (pre-encode first)")
        return round(float(latent_std), 6) or 1.0
    if isinstance(latent_scale, str):
        raise ConfigError("", "latent_scale", f"expected 'auto', a number or null, got {latent_scale!r}")
    return float(latent_scale)


def latent_diffusion_config(dit_config: Mapping[str, Any], autoencoder_config: Mapping[str, Any], *,
                            sample_size: int, latent_scale: float | str | None,
                            latent_std: float | None = None) -> dict[str, Any]:
    """``dit_config`` with the autoencoder as its pretransform: ``pretransform.config`` is the autoencoder's
    ``model`` section, ``io_channels`` its latent width, ``sample_rate`` / ``audio_channels`` its own,
    ``sample_size`` the pre-encoded crop length and the scale from :func:`pretransform_scale`.

    A ``diffusion_uncond`` config (the diffusion_uncond pipeline's) has its backbone's channels in
    ``model.config.in_channels`` (``io_channels`` for ``DAU1d``), as 0.0.20 lays it out; they are set the same way.
    The inputs are not modified."""
    config = copy.deepcopy(dict(dit_config))
    ae_model = autoencoder_config["model"]
    model = config["model"]
    pretransform = model.setdefault("pretransform", {"type": "autoencoder"})
    pretransform["config"] = copy.deepcopy(ae_model)
    latent_dim = int(ae_model["latent_dim"])
    if config.get("model_type") == "diffusion_uncond":
        model["config"][UNCOND_CHANNELS_KEY.get(model.get("type"), "in_channels")] = latent_dim
    else:
        model["io_channels"] = latent_dim
        model["diffusion"]["config"]["io_channels"] = latent_dim
    config["sample_rate"] = autoencoder_config["sample_rate"]
    config["audio_channels"] = autoencoder_config.get("audio_channels", 2)  # upstream's default channel count
    config["sample_size"] = int(sample_size)
    scale = pretransform_scale(latent_scale, latent_std)
    if scale is not None:
        pretransform["scale"] = scale
    return config


__all__ = ["AUTO_SCALE", "latent_diffusion_config", "pretransform_scale"]
