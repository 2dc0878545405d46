"""Adversarial critics for autoencoder training: EnCodec's multi-scale STFT discriminator, and the one
registry (``DISCRIMINATORS``) of every ``loss_configs.discriminator.type``: ``encodec`` (here),
``oobleck`` (:mod:`.oobleck_discriminator`), ``dac`` (:mod:`.dac_discriminator`), ``big_vgan``
(:mod:`.bigvgan_discriminator`), ``hil`` (:mod:`.hil_discriminator`) and ``transformer``
(:mod:`.transformer_discriminator`).

Layout and parameter names follow stable-audio-tools 0.0.20 exactly, because its training
checkpoints store the discriminator under ``discriminator.discriminators.discriminators.{scale}.*``:
``spec_transform.window`` (a persistent Hann window), ``convs.{i}.conv.weight_g/weight_v/bias`` (legacy
``torch.nn.utils.weight_norm``) and ``conv_post.conv.*``.

Each scale turns audio into a complex spectrogram (no centering, normalised by the window energy),
stacks real and imaginary parts as channels, and runs a stack of 2-D convolutions over
``(frames, frequency)``: one input conv, one dilated conv per entry of ``dilations`` (dilation along
time), one square conv, then a 1-channel ``conv_post`` that gives the logits. Every conv but the last
is followed by LeakyReLU(0.2) and its output is a feature map for feature matching.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from stable_audio_ops.config.schema import ConfigNode, lookup
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.gan_losses import hinge_losses, relativistic_losses

LOSS_TYPES = ("hinge", "rpgan")
__all__ = ["DISCRIMINATORS", "EncodecDiscriminator", "create_discriminator_from_config", "hinge_losses",
           "relativistic_losses"]


def _weight_normed_conv2d(*args, **kwargs) -> nn.Conv2d:
    # The legacy API (not torch.nn.utils.parametrizations) is what produces the weight_g/weight_v keys
    # upstream checkpoints contain.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(nn.Conv2d(*args, **kwargs))


class NormConv2d(nn.Module):
    """A weight-normed Conv2d held at ``.conv`` (that attribute name is part of the checkpoint keys)."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.conv = _weight_normed_conv2d(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ComplexSpectrogram(nn.Module):
    """``(B, C, T) -> (B, C, F, frames)`` complex STFT, no centering, divided by ``sqrt(sum(window^2))``.

    The Hann window is a persistent buffer named ``window`` (upstream checkpoints contain it).
    """

    def __init__(self, n_fft: int, hop_length: int, win_length: int, normalized: bool = True):
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} must not exceed n_fft {n_fft}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.normalized = normalized
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.shape[-1] < self.n_fft:
            raise ValueError(
                f"discriminator input of {audio.shape[-1]} samples is shorter than n_fft {self.n_fft}"
            )
        leading = audio.shape[:-1]
        spec = torch.stft(
            audio.reshape(-1, audio.shape[-1]),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spec = spec.reshape(*leading, *spec.shape[-2:])
        if self.normalized:
            spec = spec / self.window.pow(2.0).sum().sqrt()
        return spec


def _same_padding(kernel_size: Sequence[int], dilation: Sequence[int] = (1, 1)) -> tuple[int, int]:
    return ((kernel_size[0] - 1) * dilation[0]) // 2, ((kernel_size[1] - 1) * dilation[1]) // 2


class DiscriminatorSTFT(nn.Module):
    """One scale of the MS-STFT discriminator; ``forward(x) -> (logits, feature_maps)``."""

    def __init__(
        self,
        filters: int,
        in_channels: int = 1,
        out_channels: int = 1,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        max_filters: int = 1024,
        filters_scale: int = 1,
        kernel_size: Sequence[int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
        stride: Sequence[int] = (1, 1),
        normalized: bool = True,
        activation: str = "LeakyReLU",
        activation_params: dict[str, Any] | None = None,
        spec_scale_pow: float = 0.0,
    ):
        super().__init__()
        kernel_size, stride = tuple(kernel_size), tuple(stride)
        if len(kernel_size) != 2 or len(stride) != 2:
            raise ValueError(f"kernel_size and stride must have 2 entries, got {kernel_size} and {stride}")
        activation_cls = getattr(nn, activation, None)
        if not (isinstance(activation_cls, type) and issubclass(activation_cls, nn.Module)):
            raise ValueError(f"activation {activation!r} is not a torch.nn module class")
        self.filters = filters
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.normalized = normalized
        self.spec_scale_pow = spec_scale_pow
        self.activation = activation_cls(
            **({"negative_slope": 0.2} if activation_params is None else activation_params)
        )
        self.spec_transform = ComplexSpectrogram(n_fft, hop_length, win_length, normalized)

        self.convs = nn.ModuleList()
        self.convs.append(
            NormConv2d(2 * in_channels, filters, kernel_size=kernel_size, padding=_same_padding(kernel_size))
        )
        channels = min(filters_scale * filters, max_filters)
        for i, dilation in enumerate(dilations):
            out_chs = min((filters_scale ** (i + 1)) * filters, max_filters)
            self.convs.append(
                NormConv2d(
                    channels,
                    out_chs,
                    kernel_size=kernel_size,
                    stride=stride,
                    dilation=(dilation, 1),
                    padding=_same_padding(kernel_size, (dilation, 1)),
                )
            )
            channels = out_chs
        out_chs = min((filters_scale ** (len(dilations) + 1)) * filters, max_filters)
        square = (kernel_size[0], kernel_size[0])
        self.convs.append(NormConv2d(channels, out_chs, kernel_size=square, padding=_same_padding(square)))
        self.conv_post = NormConv2d(out_chs, out_channels, kernel_size=square, padding=_same_padding(square))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = self.spec_transform(audio)
        if self.spec_scale_pow != 0.0:
            spec = spec * torch.pow(spec.abs() + 1e-6, self.spec_scale_pow)
        # (B, 2C, F, frames) -> (B, 2C, frames, F): kernels run (time, frequency).
        z = torch.cat([spec.real, spec.imag], dim=1).transpose(-1, -2)
        # Upstream recomputes each conv in backward (activation checkpointing) to bound memory at
        # 44.1 kHz x 7 scales; outside autograd it changes nothing.
        use_checkpoint = torch.is_grad_enabled()
        feature_maps = []
        for layer in self.convs:
            z = checkpoint(layer, z, use_reentrant=False) if use_checkpoint else layer(z)
            z = self.activation(z)
            feature_maps.append(z)
        logits = checkpoint(self.conv_post, z, use_reentrant=False) if use_checkpoint else self.conv_post(z)
        return logits, feature_maps


class MultiScaleSTFTDiscriminator(nn.Module):
    """One :class:`DiscriminatorSTFT` per (n_fft, hop, window) triple, held at ``.discriminators``."""

    def __init__(
        self,
        filters: int,
        in_channels: int = 1,
        out_channels: int = 1,
        n_ffts: Sequence[int] = (1024, 2048, 512),
        hop_lengths: Sequence[int] = (256, 512, 128),
        win_lengths: Sequence[int] = (1024, 2048, 512),
        **scale_kwargs,
    ):
        super().__init__()
        if not (len(n_ffts) == len(hop_lengths) == len(win_lengths)) or len(n_ffts) == 0:
            raise ValueError(
                "n_ffts, hop_lengths and win_lengths must be non-empty and of equal length; got "
                f"{len(n_ffts)}, {len(hop_lengths)}, {len(win_lengths)}"
            )
        self.discriminators = nn.ModuleList(
            DiscriminatorSTFT(
                filters,
                in_channels=in_channels,
                out_channels=out_channels,
                n_fft=n_fft,
                hop_length=hop,
                win_length=win,
                **scale_kwargs,
            )
            for n_fft, hop, win in zip(n_ffts, hop_lengths, win_lengths, strict=True)
        )
        self.num_discriminators = len(self.discriminators)

    def forward(self, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, feature_maps = [], []
        for scale in self.discriminators:
            scale_logits, scale_features = scale(audio)
            logits.append(scale_logits)
            feature_maps.append(scale_features)
        return logits, feature_maps


class EncodecDiscriminator(nn.Module):
    """MS-STFT discriminator plus the GAN losses the autoencoder trainer uses.

    ``loss(reals, fakes) -> (discriminator_loss, adversarial_loss, feature_matching_loss)``, each the
    mean over scales. Feature matching is the L1 distance between real and fake feature maps, averaged
    over the layers of a scale; with ``normalize_losses`` each layer's distance is divided by
    ``mean|real features| + 1e-3``.
    """

    def __init__(self, *args, normalize_losses: bool = False, loss_type: str = "hinge", **kwargs):
        super().__init__()
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}; got {loss_type!r}")
        self.discriminators = MultiScaleSTFTDiscriminator(*args, **kwargs)
        self.normalize_losses = normalize_losses
        self.loss_type = loss_type

    def forward(self, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        return self.discriminators(audio)

    def feature_distance(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        distance = (real - fake).abs().mean()
        if self.normalize_losses:
            distance = distance / (real.abs().mean() + 1e-3)
        return distance

    def loss(
        self, reals: torch.Tensor, fakes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits_real, features_real = self(reals)
        logits_fake, features_fake = self(fakes)
        gan_losses = hinge_losses if self.loss_type == "hinge" else relativistic_losses
        dis_total = reals.new_zeros(())
        adv_total = reals.new_zeros(())
        fm_total = reals.new_zeros(())
        for scale_real, scale_fake, layers_real, layers_fake in zip(
            logits_real, logits_fake, features_real, features_fake, strict=True
        ):
            layer_distances = [
                self.feature_distance(r, f) for r, f in zip(layers_real, layers_fake, strict=True)
            ]
            fm_total = fm_total + sum(layer_distances) / len(layers_real)
            dis, adv = gan_losses(scale_real, scale_fake)
            dis_total = dis_total + dis
            adv_total = adv_total + adv
        scales = len(logits_real)
        return dis_total / scales, adv_total / scales, fm_total / scales


def _build_encodec(config: ConfigNode, in_channels: int | None, sample_rate: int | None) -> EncodecDiscriminator:
    kwargs = dict(config.data)
    if in_channels is not None:
        if "in_channels" in kwargs and kwargs["in_channels"] != in_channels:
            raise config.error(
                f"in_channels {kwargs['in_channels']} conflicts with the model's {in_channels} output channels",
                "in_channels",
            )
        kwargs["in_channels"] = in_channels
    config.get("filters", "a positive int")
    for key in ("n_ffts", "hop_lengths", "win_lengths"):
        if key in kwargs:
            config.get(key, "a list of ints")
    if "loss_type" in kwargs:
        config.choice("loss_type", LOSS_TYPES)
    try:
        return EncodecDiscriminator(**kwargs)
    except TypeError as exc:  # unknown option names
        raise ConfigError(config.source, config.path, f"bad encodec discriminator option: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(config.source, config.path, str(exc)) from exc


def _check_keys(config: ConfigNode, allowed: Sequence[str], kind: str) -> dict:
    """The config's options, after rejecting any key the ``kind`` discriminator does not take."""
    if not isinstance(config.data, dict):
        raise config.error(f"the {kind} discriminator config must be a mapping")
    for key in config.data:
        if key not in allowed:
            raise config.error(f"unknown {kind} discriminator option (expected one of {', '.join(allowed)})", key)
    return dict(config.data)


def _auto_fill(config: ConfigNode, kwargs: dict, key: str, value: int | None) -> None:
    """Set an option the trainer derives from the model, refusing a config value that contradicts it."""
    if value is None:
        return
    if key in kwargs and kwargs[key] != value:
        raise config.error(f"{key} {kwargs[key]} conflicts with the model's {value}", key)
    kwargs[key] = value


def _build_oobleck(config: ConfigNode, in_channels: int | None, sample_rate: int | None) -> nn.Module:
    from stable_audio_ops.models.oobleck_discriminator import OobleckDiscriminator

    kwargs = _check_keys(config, ("in_channels",), "oobleck")
    # Upstream leaves in_channels at 1 unless the config sets it, which crashes on stereo models; we
    # fill it from the model when absent (identical for mono) and keep an explicit value.
    if "in_channels" in kwargs:
        config.get("in_channels", "a positive int")
    elif in_channels is not None:
        kwargs["in_channels"] = in_channels
    return OobleckDiscriminator(**kwargs)


DAC_OPTIONS = ("use_hinge", "channels", "sample_rate", "rates", "periods", "fft_sizes", "bands")


def _build_dac(config: ConfigNode, in_channels: int | None, sample_rate: int | None) -> nn.Module:
    from stable_audio_ops.models.dac_discriminator import DACGANLoss

    kwargs = _check_keys(config, DAC_OPTIONS, "dac")
    _auto_fill(config, kwargs, "channels", in_channels)
    _auto_fill(config, kwargs, "sample_rate", sample_rate)
    for key in ("rates", "periods", "fft_sizes", "bands"):
        if key in kwargs:
            config.get(key, "a list")
    try:
        return DACGANLoss(**kwargs)
    except ValueError as exc:
        raise ConfigError(config.source, config.path, str(exc)) from exc


def _build_big_vgan(config: ConfigNode, in_channels: int | None, sample_rate: int | None) -> nn.Module:
    from stable_audio_ops.models.bigvgan_discriminator import CQTD_DEFAULTS, BigVGANDiscriminator

    kwargs = _check_keys(config, ("use_hinge", "periods", "channels", "sample_rate", *CQTD_DEFAULTS), "big_vgan")
    _auto_fill(config, kwargs, "channels", in_channels)
    _auto_fill(config, kwargs, "sample_rate", sample_rate)
    if "cqtd_in_channels" in kwargs and kwargs["cqtd_in_channels"] != kwargs.get("channels", 1):
        raise config.error("cqtd_in_channels must equal the model's output channels", "cqtd_in_channels")
    if "sample_rate" not in kwargs:
        raise config.error("the big_vgan discriminator needs the model's sample rate", "sample_rate")
    for key in ("periods", "cqtd_dilations", "cqtd_hop_lengths", "cqtd_n_octaves", "cqtd_bins_per_octaves"):
        if key in kwargs:
            config.get(key, "a list of ints")
    try:
        return BigVGANDiscriminator(**kwargs)
    except ValueError as exc:
        raise ConfigError(config.source, config.path, str(exc)) from exc


def _refuse_missing_parts(config: ConfigNode, kwargs: dict, kind: str) -> None:
    """0.0.20 options that need parts this package does not have are errors, not silently different critics."""
    if kwargs.get("add_noise", False):
        raise config.error(f"add_noise is not supported for the {kind} discriminator: 0.0.20's psychoacoustic "
                           "noise model is not part of this package (leave it false)", "add_noise")


def _parameters(*callables) -> set[str]:
    """Keyword parameter names of constructors (the options a critic set takes)."""
    names: set[str] = set()
    for fn in callables:
        names |= {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD}
    return names - {"self"}


# per-scale n_fft/hop_length/win_length come from the n_ffts/hop_lengths/win_lengths lists
STFT_OPTIONS = _parameters(MultiScaleSTFTDiscriminator.__init__, DiscriminatorSTFT.__init__) - {
    "n_fft", "hop_length", "win_length"}


def _build_hil(config: ConfigNode, in_channels: int | None, sample_rate: int | None) -> nn.Module:
    from stable_audio_ops.models.hil_discriminator import (
        FILTER_BANK_OPTIONS,
        HILDiscriminator,
        MultiFilterBankDiscriminator,
    )

    options = ("normalize_losses", "loss_type", "add_noise", "sample_rate", "n_chroma",
               *sorted(STFT_OPTIONS | FILTER_BANK_OPTIONS))
    kwargs = _check_keys(config, options, "hil")
    _refuse_missing_parts(config, kwargs, "hil")
    kwargs.pop("add_noise", None)
    if kwargs.pop("n_chroma", 0):
        raise config.error("n_chroma > 0 is not supported: the chroma critic needs torchaudio's prototype "
                           "ChromaSpectrogram, which this package does not have (leave it 0)", "n_chroma")
    _auto_fill(config, kwargs, "in_channels", in_channels)
    _auto_fill(config, kwargs, "sample_rate", sample_rate)
    config.get("filters", "a positive int")
    if "loss_type" in kwargs:
        config.choice("loss_type", HIL_LOSS_TYPES)
    # 0.0.20 hands every option to both critic sets; each takes the ones it knows
    try:
        return HILDiscriminator(
            MultiScaleSTFTDiscriminator(**{k: v for k, v in kwargs.items() if k in STFT_OPTIONS}),
            MultiFilterBankDiscriminator(**{k: v for k, v in kwargs.items() if k in FILTER_BANK_OPTIONS}),
            **{k: v for k, v in kwargs.items() if k in ("normalize_losses", "loss_type", "sample_rate")},
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(config.source, config.path, f"bad hil discriminator option: {exc}") from exc


HIL_LOSS_TYPES = ("hinge", "rpgan", "sigmoid_rpgan")


def _transformer_family_options(node: ConfigNode, family: str) -> dict:
    from stable_audio_ops.models.hil_discriminator import FILTER_BANK_OPTIONS
    from stable_audio_ops.models.transformer_discriminator import CRITIC_OPTIONS, FAMILY_DEFAULTS

    use_hil = family == "mfb" and isinstance(node.data, dict) and bool(node.data.get("use_HIL", False))
    if use_hil:  # filter-bank critics of the hil type instead of wavelet transformers
        allowed: tuple[str, ...] = ("enabled", "use_HIL", *sorted(FILTER_BANK_OPTIONS - {"in_channels"}))
    else:
        allowed = ("enabled", *(("use_HIL",) if family == "mfb" else ()), *FAMILY_DEFAULTS[family], *CRITIC_OPTIONS)
    kwargs = _check_keys(node, allowed, f"transformer {family}_kwargs" + (" (use_HIL)" if use_hil else ""))
    if use_hil:
        return kwargs
    for key in FAMILY_DEFAULTS[family]:
        if key in kwargs:
            node.get(key, "a list of ints")
    return kwargs


def _build_transformer(config: ConfigNode, in_channels: int | None, sample_rate: int | None) -> nn.Module:
    from stable_audio_ops.models.transformer_discriminator import MultiTransformerDiscriminator

    options = ("normalize_losses", "loss_type", "add_noise", "noise_kwargs", "sample_rate", "in_channels",
               "stft_kwargs", "patched_kwargs", "mfb_kwargs", "chroma_kwargs")
    kwargs = _check_keys(config, options, "transformer")
    _refuse_missing_parts(config, kwargs, "transformer")
    kwargs.pop("add_noise", None)
    kwargs.pop("noise_kwargs", None)  # read only with add_noise
    chroma = config.child("chroma_kwargs", default={})
    if kwargs.pop("chroma_kwargs", {}).get("enabled", False):
        raise chroma.error("chroma critics are not supported: they need torchaudio's prototype ChromaSpectrogram, "
                           "which this package does not have (leave enabled false)", "enabled")
    _auto_fill(config, kwargs, "in_channels", in_channels)
    _auto_fill(config, kwargs, "sample_rate", sample_rate)
    if "loss_type" in kwargs:
        config.choice("loss_type", HIL_LOSS_TYPES)
    for family in ("stft", "patched", "mfb"):
        key = f"{family}_kwargs"
        if key in kwargs:
            kwargs[key] = _transformer_family_options(config.child(key), family)
    try:
        return MultiTransformerDiscriminator(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(config.source, config.path, f"bad transformer discriminator option: {exc}") from exc


# name -> builder(config node, in_channels, sample_rate)
DISCRIMINATORS = {"encodec": _build_encodec, "oobleck": _build_oobleck, "dac": _build_dac, "big_vgan": _build_big_vgan,
                  "hil": _build_hil, "transformer": _build_transformer}


def create_discriminator_from_config(
    disc_config: dict,
    node: ConfigNode | None = None,
    *,
    in_channels: int | None = None,
    sample_rate: int | None = None,
) -> nn.Module:
    """Build the discriminator of a ``loss_configs.discriminator`` block (``{"type", "config", ...}``).

    ``in_channels`` is the autoencoder's ``out_channels`` and ``sample_rate`` the model's; upstream's
    training wrapper fills them that way (``channels``/``sample_rate`` for ``dac``), so pass them
    rather than writing them into the config.
    """
    node = node if node is not None else ConfigNode(disc_config, "<discriminator config>", "")
    name = node.get("type", "a string")
    builder = lookup(DISCRIMINATORS, name, "discriminator type", node)
    return builder(node.child("config", default={}), in_channels, sample_rate)
