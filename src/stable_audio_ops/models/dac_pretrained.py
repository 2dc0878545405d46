"""``dac_pretrained``: descript-audio-codec's released DAC codec as a frozen, discrete pretransform.

stable-audio-tools 0.0.20 calls ``dac.utils.download`` (an HTTP fetch from GitHub on first use) and
``dac.DAC.load``. Here nothing downloads at run time: the weights file must already be on disk, either
named by the config's ``model_path`` (a project addition) or in the place descript-audio-codec itself
caches it (``~/.cache/descript/dac/weights_<model_type>_<model_bitrate>_<tag>.pth``, so a machine that
ever ran ``dac.utils.download`` needs nothing more). Without it the error names the URL and the path.

The file is descript-audio-codec's plain ``.pth`` layout: ``{"state_dict": ..., "metadata": {"kwargs":
DAC constructor arguments}}``. It loads strictly into :class:`DACCodec`, built from the project's DAC
encoder/decoder (:mod:`.dac`) and quantizer (:mod:`.dac_quantizer`) with descript's attribute names, so
the keys match (``encoder.block.*``, ``quantizer.quantizers.*``, ``decoder.model.*``) and, under a
parent model, sit at ``pretransform.model.*`` as upstream.

Difference from 0.0.20: ``decode_tokens`` works here (upstream passes DAC's ``from_codes`` tuple to the
decoder and raises), and ``downsampling_ratio`` is the product of the file's ``encoder_rates`` (upstream
hard-codes 512 for ``44khz`` and 320 otherwise, the same numbers for the released models).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.checkpoints import load_state_dict_checked
from stable_audio_ops.models.dac import DACDecoderNet, DACEncoderNet
from stable_audio_ops.models.dac_quantizer import DACResidualVQ
from stable_audio_ops.models.meta_init import real_parameters

# (model_type, model_bitrate) -> (release tag, URL): descript-audio-codec 1.0.0's ``dac.utils`` table.
DAC_RELEASES: dict[tuple[str, str], tuple[str, str]] = {
    ("44khz", "8kbps"): ("0.0.1", "https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.1/weights.pth"),
    ("24khz", "8kbps"): ("0.0.4",
                         "https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.4/weights_24khz.pth"),
    ("16khz", "8kbps"): ("0.0.5",
                         "https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.5/weights_16khz.pth"),
    ("44khz", "16kbps"): ("1.0.0", "https://github.com/descriptinc/descript-audio-codec/releases/download/1.0.0/"
                                   "weights_44khz_16kbps.pth"),
}

# DAC's constructor arguments and defaults (``dac.model.DAC``); a file's ``metadata.kwargs`` override them.
DAC_DEFAULTS: dict[str, Any] = {
    "encoder_dim": 64, "encoder_rates": [2, 4, 8, 8], "latent_dim": None, "decoder_dim": 1536,
    "decoder_rates": [8, 8, 4, 2], "n_codebooks": 9, "codebook_size": 1024, "codebook_dim": 8,
    "quantizer_dropout": False, "sample_rate": 44100,
}


class DACCodec(nn.Module):
    """descript's ``DAC`` model (encoder -> residual VQ -> decoder) with its attribute names."""

    def __init__(self, encoder_dim: int = 64, encoder_rates: Sequence[int] = (2, 4, 8, 8), latent_dim: int | None = None,
                 decoder_dim: int = 1536, decoder_rates: Sequence[int] = (8, 8, 4, 2), n_codebooks: int = 9,
                 codebook_size: int = 1024, codebook_dim: int | list[int] = 8, quantizer_dropout: float = 0.0,
                 sample_rate: int = 44100):
        super().__init__()
        if latent_dim is None:
            latent_dim = encoder_dim * 2 ** len(encoder_rates)
        self.latent_dim = latent_dim
        self.hop_length = math.prod(encoder_rates)
        self.n_codebooks = n_codebooks
        self.codebook_size = codebook_size
        self.sample_rate = sample_rate
        self.encoder = DACEncoderNet(1, encoder_dim, encoder_rates, d_latent=latent_dim)
        self.quantizer = DACResidualVQ(latent_dim, n_codebooks, codebook_size, codebook_dim,
                                       float(quantizer_dropout))
        self.decoder = DACDecoderNet(latent_dim, decoder_dim, decoder_rates, 1)

    def encode(self, audio: torch.Tensor, n_quantizers: int | None = None):
        """-> (z_q, codes ``[B, Q, T]``, projected latents, commitment loss, codebook loss), as DAC."""
        return self.quantizer(self.encoder(audio), n_quantizers)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def dac_cache_path(model_type: str, model_bitrate: str) -> Path:
    """Where ``dac.utils.download`` keeps the released file (``~`` is ``$HOME``)."""
    tag, _ = DAC_RELEASES[(model_type, model_bitrate)]
    return Path.home() / ".cache" / "descript" / "dac" / f"weights_{model_type}_{model_bitrate}_{tag}.pth"


def missing_weights_message(model_type: str, model_bitrate: str, tried: Path, configured: bool) -> str:
    """The error text when no weights file is on disk: what to download, from where, where to put it."""
    _, url = DAC_RELEASES[(model_type, model_bitrate)]
    default = dac_cache_path(model_type, model_bitrate)
    where = (f"config.model_path names {tried}, which does not exist" if configured
             else f"no file at {tried} (where descript-audio-codec caches it)")
    return (f"dac_pretrained ({model_type}, {model_bitrate}): {where}. Nothing is downloaded at run time. "
            f"Download {url} and save it as {default}, or set config.model_path to where you saved it "
            f"(e.g. `curl -L -o {default} {url}`).")


def load_dac_file(path: Path) -> DACCodec:
    """Build a :class:`DACCodec` from a descript ``.pth`` file's ``metadata.kwargs`` and load it strictly.

    Read with ``weights_only`` (the layout is tensors plus plain metadata), so a file cannot run code."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path}: not a descript-audio-codec weights file ({err})") from err
    if not isinstance(payload, Mapping) or "state_dict" not in payload:
        raise CheckpointError(f"{path}: expected descript-audio-codec's layout, a dict with 'state_dict' and "
                              f"'metadata' (metadata.kwargs: DAC's constructor arguments); got "
                              f"{sorted(payload) if isinstance(payload, Mapping) else type(payload).__name__}")
    kwargs = dict((payload.get("metadata") or {}).get("kwargs") or {})
    # As DAC.load: keep only constructor arguments (the saved kwargs may carry others).
    config = {**DAC_DEFAULTS, **{k: v for k, v in kwargs.items() if k in DAC_DEFAULTS}}
    # Real parameters even while the parent is built on ``meta`` for a checkpoint load (its checkpoint may
    # hold these weights too, but the pretransform must work from this file alone); ``assign`` makes the
    # file's tensors the parameters, so the random initialisation is dropped at once.
    with real_parameters():
        try:
            codec = DACCodec(**config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: metadata.kwargs {kwargs} do not describe a DAC model ({err})") from err
        load_state_dict_checked(codec, payload["state_dict"], strict=True, what=f"DAC weights {path}",
                                assign=True)
    return codec


class PretrainedDACPretransform(nn.Module):
    """Frozen DAC: ``encode`` gives the continuous latents (``/ scale``; quantized first when
    ``quantize_on_decode`` is false), ``decode`` multiplies by ``scale`` and quantizes (when
    ``quantize_on_decode``) before decoding; ``tokenize``/``decode_tokens`` use the codes ``[B, Q, T]``.

    ``chunked`` is accepted and stored, as upstream, where it has no effect either.
    """

    is_discrete = True

    def __init__(self, codec: DACCodec, scale: float = 1.0, quantize_on_decode: bool = True, chunked: bool = True):
        super().__init__()
        self.model = codec
        self.scale = float(scale)
        self.quantize_on_decode = bool(quantize_on_decode)
        self.chunked = bool(chunked)
        self.enable_grad = False
        self.io_channels = 1
        self.sample_rate = codec.sample_rate
        self.downsampling_ratio = codec.hop_length
        self.encoded_channels = codec.latent_dim
        self.num_quantizers = codec.n_codebooks
        self.codebook_size = codec.codebook_size

    def train(self, mode: bool = True) -> PretrainedDACPretransform:
        # Frozen, it stays in eval mode under a training parent: the quantizer's dropout never runs.
        super().train(mode and self.enable_grad)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        latents = self.model.encoder(x)
        if not self.quantize_on_decode:
            latents = self.model.quantizer(latents, n_quantizers=self.model.n_codebooks)[0]
        return latents / self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = z * self.scale
        if self.quantize_on_decode:
            z = self.model.quantizer(z, n_quantizers=self.model.n_codebooks)[0]
        return self.model.decode(z)

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)[1]

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.decode(self.model.quantizer.from_codes(tokens))


def resolve_dac_weights(cfg: ConfigNode, model_type: str, model_bitrate: str) -> Path:
    """The weights file to load: ``config.model_path`` if set, else DAC's cache path; it must exist.

    The ``model_type``/``model_bitrate`` pair must be a released one only when it picks the file."""
    model_path = cfg.get("model_path", "a string", None)
    if model_path is None and (model_type, model_bitrate) not in DAC_RELEASES:
        known = ", ".join(f"{t}/{b}" for t, b in DAC_RELEASES)
        raise cfg.error(f"no released DAC model {model_type}/{model_bitrate} (released: {known}); "
                        "for another DAC file set config.model_path",
                        "model_bitrate" if model_type in {t for t, _ in DAC_RELEASES} else "model_type")
    path = Path(model_path).expanduser() if model_path is not None else dac_cache_path(model_type, model_bitrate)
    if not path.is_file():
        if model_path is not None and (model_type, model_bitrate) not in DAC_RELEASES:
            raise cfg.error(f"{path} does not exist (nothing is downloaded at run time)", "model_path")
        raise cfg.error(missing_weights_message(model_type, model_bitrate, path, model_path is not None),
                        "model_path" if model_path is not None else None)
    return path


def build_dac_pretrained_pretransform(node: ConfigNode, sample_rate: int) -> PretrainedDACPretransform:
    """``{"type": "dac_pretrained", "config": {model_type, model_bitrate, scale, quantize_on_decode, chunked,
    model_path}}`` (``sample_rate`` unused: the file says the codec's rate)."""
    cfg = node.child("config", {})
    check_known_keys(cfg, ("model_type", "model_bitrate", "scale", "quantize_on_decode", "chunked", "model_path"))
    model_type = cfg.get("model_type", "a string", "44khz")
    model_bitrate = cfg.get("model_bitrate", "a string", "8kbps")
    codec = load_dac_file(resolve_dac_weights(cfg, model_type, model_bitrate))
    return PretrainedDACPretransform(
        codec,
        scale=cfg.get("scale", "a positive number", 1.0),
        quantize_on_decode=cfg.get("quantize_on_decode", "a bool", True),
        chunked=cfg.get("chunked", "a bool", True),
    )


__all__ = [
    "DAC_RELEASES", "DACCodec", "PretrainedDACPretransform", "build_dac_pretrained_pretransform",
    "dac_cache_path", "load_dac_file", "missing_weights_message",
]
