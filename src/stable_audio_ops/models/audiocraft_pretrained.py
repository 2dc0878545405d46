"""``audiocraft_pretrained``: a pretrained EnCodec compression model (MusicGen's tokenizer) as a frozen,
token-only pretransform.

stable-audio-tools 0.0.20 calls audiocraft's ``CompressionModel.get_pretrained(model_type)``. For a Hugging
Face name such as the default ``facebook/encodec_32khz``, audiocraft (1.3.0, the current release) loads it
with ``transformers.EncodecModel.from_pretrained`` (downloading it on first use) and wraps it in its
``HFEncodecCompressionModel``: codes come from ``model.encode(x, None, bandwidth)`` at the largest target
bandwidth, audio from ``model.decode(codes[None], [None])``. This module does the same with the
``transformers`` EncodecModel and *local files only*: the folder named by ``config.model_path`` (a project
addition) or the ``model_type`` repository in the local Hugging Face cache. Nothing downloads at run time;
without local files the error says what to download and where to put it. Loading is strict: any missing,
unexpected or mis-shaped weight is an error naming the folder and the keys (``from_pretrained`` alone
would only warn and leave them random). audiocraft itself is not needed.

As upstream, continuous ``encode``/``decode`` are refused (EnCodec's latents are not exposed) and only
``tokenize`` (``[B, num_quantizers, T]`` codes) and ``decode_tokens`` work; weights live at
``pretransform.model.model.*`` in a parent's state dict. Differences from 0.0.20: upstream casts the codec
to float16 everywhere (CPU included, where some of its ops fail); here it runs in float16 only on CUDA and
``decode_tokens`` returns float32 audio. audiocraft's other names (``dac_44khz``/``dac_24khz``, audiocraft
training checkpoints) are not supported: use ``dac_pretrained`` for DAC.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.meta_init import real_parameters


class HFEncodecCodec(nn.Module):
    """audiocraft's ``HFEncodecCompressionModel``: a ``transformers`` EncodecModel (at ``.model``) used at
    its largest target bandwidth."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        config = model.config
        self.sample_rate = int(config.sampling_rate)
        self.channels = int(config.audio_channels)
        self.hop_length = math.prod(config.upsampling_ratios)
        self.cardinality = int(config.codebook_size)
        frame_rate = self.sample_rate / self.hop_length
        per_codebook = frame_rate * math.log2(self.cardinality) / 1000  # kbps one codebook carries
        self.bandwidth = max(config.target_bandwidths)
        self.num_codebooks = int(self.bandwidth / per_codebook + 1e-6)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, channels, T]`` -> codes ``[B, num_codebooks, T / hop_length]``."""
        result = self.model.encode(x, None, self.bandwidth, return_dict=False)
        return result[0][0]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes[None], [None], return_dict=False)[0]


class AudiocraftCompressionPretransform(nn.Module):
    """Frozen EnCodec tokenizer: ``tokenize`` audio to codes and ``decode_tokens`` codes to audio."""

    is_discrete = True

    def __init__(self, codec: HFEncodecCodec, scale: float = 1.0, quantize_on_decode: bool = True):
        super().__init__()
        self.model = codec
        self.scale = float(scale)  # stored as upstream; tokens are never scaled
        self.quantize_on_decode = bool(quantize_on_decode)
        self.enable_grad = False
        self.sample_rate = codec.sample_rate
        self.io_channels = codec.channels
        self.downsampling_ratio = codec.hop_length
        self.num_quantizers = codec.num_codebooks
        self.codebook_size = codec.cardinality

    def train(self, mode: bool = True) -> AudiocraftCompressionPretransform:
        super().train(mode and self.enable_grad)  # frozen: stays in eval mode under a training parent
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("audiocraft_pretrained gives tokens only (as stable-audio-tools 0.0.20): "
                                  "use tokenize(), not continuous encode()")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("audiocraft_pretrained gives tokens only (as stable-audio-tools 0.0.20): "
                                  "use decode_tokens(), not continuous decode()")

    def _half_on_cuda(self, x: torch.Tensor) -> None:
        if x.is_cuda:  # upstream runs the codec in float16
            self.model.half()

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        self._half_on_cuda(x)
        with torch.autocast("cuda", enabled=False):
            return self.model.encode(x.half() if x.is_cuda else x)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        self._half_on_cuda(tokens)
        with torch.autocast("cuda", enabled=False):
            return self.model.decode(tokens).float()


def hf_cache_dir() -> str:
    """Where ``huggingface_hub`` keeps downloads (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    return str(Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")


def missing_encodec_message(model_type: str, model_path: str | None, cause: Exception) -> str:
    """The error text when no local EnCodec is found: what to download, from where, where to put it."""
    where = (f"config.model_path {model_path!r} holds no EnCodec model" if model_path is not None
             else f"{model_type!r} is not in the local Hugging Face cache ({hf_cache_dir()})")
    return (f"audiocraft_pretrained: {where}. Nothing is downloaded at run time. Download "
            f"https://huggingface.co/{model_type} (config.json and model.safetensors), e.g. `hf download "
            f"{model_type}` on a machine with network access, then copy the cache to {hf_cache_dir()}, or save the "
            f"files in a folder and set config.model_path to it. Cause: {cause}")


def load_encodec(source: str, model_type: str, model_path: str | None) -> HFEncodecCodec:
    """``transformers.EncodecModel`` from a local folder or the local HF cache, strictly."""
    import transformers
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the missing/unexpected keys are reported below, as an error
    hf_logging.disable_progress_bar()
    try:
        with real_parameters():
            model, info = transformers.EncodecModel.from_pretrained(
                source, local_files_only=True, output_loading_info=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(missing_encodec_message(model_type, model_path, err)) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()
    problems: dict[str, Any] = {k: info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(problems.values()):
        listed = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, sorted(v)[:20]))}"
                           for k, v in problems.items() if v)
        raise CheckpointError(f"EnCodec weights {source}: checkpoint does not match the model ({listed})")
    return HFEncodecCodec(model.eval())


def build_audiocraft_pretrained_pretransform(node: ConfigNode, sample_rate: int) -> AudiocraftCompressionPretransform:
    """``{"type": "audiocraft_pretrained", "config": {model_type, scale, quantize_on_decode, model_path}}``
    (``sample_rate`` unused: the model's config says its rate)."""
    cfg = node.child("config", {})
    check_known_keys(cfg, ("model_type", "scale", "quantize_on_decode", "model_path"))
    model_type = cfg.get("model_type", "a string", "facebook/encodec_32khz")
    if model_type in ("dac_44khz", "dac_24khz"):
        raise cfg.error(f"audiocraft's {model_type!r} is descript's DAC: use the dac_pretrained pretransform "
                        f"(model_type {model_type.split('_')[1]!r})", "model_type")
    model_path = cfg.get("model_path", "a string", None)
    source = str(Path(model_path).expanduser()) if model_path is not None else model_type
    try:
        codec = load_encodec(source, model_type, model_path)
    except FileNotFoundError as err:
        raise cfg.error(str(err), "model_path" if model_path is not None else "model_type") from None
    return AudiocraftCompressionPretransform(
        codec,
        scale=cfg.get("scale", "a positive number", 1.0),
        quantize_on_decode=cfg.get("quantize_on_decode", "a bool", True),
    )


__all__ = [
    "AudiocraftCompressionPretransform", "HFEncodecCodec", "build_audiocraft_pretrained_pretransform",
    "load_encodec", "missing_encodec_message",
]
