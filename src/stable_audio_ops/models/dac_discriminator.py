"""The ``dac`` discriminator: Descript Audio Codec's multi-period (MPD), multi-scale (MSD) and
multi-resolution band-split STFT (MRD) critics, with LSGAN or hinge losses.

Parameter names follow stable-audio-tools 0.0.20 (``discriminator.discriminators.{i}.*``; DAC's
``WNConv`` helpers make every conv but ``conv_post`` a ``Sequential(weight-normed conv, LeakyReLU(0.1))``,
hence ``convs.{j}.0.weight_g``): periods first, then rates, then FFT sizes. No buffers.

Every critic returns its list of feature maps, the logits last. Inputs are DC-removed and peak
normalised to 0.8 before every critic. MRD folds audio channels into the batch (its first conv takes
the real and imaginary parts of one channel); MPD and MSD take all channels at once.

Differences from upstream, where upstream cannot run: its MSD calls an ``AudioSignal`` it never
imports (any non-empty ``rates`` is a NameError); here MSD resamples with the project's windowed-sinc
resampler (upstream meant julius's, which differs slightly near Nyquist).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from stable_audio_ops.models.resample import SincResample

BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
PERIODS = (2, 3, 5, 7, 11)
FFT_SIZES = (2048, 1024, 512)


def _wn_conv(conv: nn.Module, act: bool = True) -> nn.Module:
    # Legacy weight norm yields the weight_g / weight_v keys upstream checkpoints hold.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        conv = torch.nn.utils.weight_norm(conv)
    return nn.Sequential(conv, nn.LeakyReLU(0.1)) if act else conv


def _run_stack(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    fmap = []
    for layer in convs:
        x = layer(x)
        fmap.append(x)
    fmap.append(conv_post(x))
    return fmap


class MPD(nn.Module):
    """Period critic: audio folded to ``(length / period, period)`` (reflect-padded), 2-D convs along time."""

    def __init__(self, period: int, channels: int = 1):
        super().__init__()
        self.period = period
        widths = [channels, 32, 128, 512, 1024, 1024]
        self.convs = nn.ModuleList(
            _wn_conv(nn.Conv2d(widths[i], widths[i + 1], (5, 1), (3, 1) if i < 4 else 1, padding=(2, 0)))
            for i in range(5)
        )
        self.conv_post = _wn_conv(nn.Conv2d(1024, 1, kernel_size=(3, 1), padding=(1, 0)), act=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Upstream always pads by period - length % period (a whole period when already divisible).
        x = F.pad(x, (0, self.period - x.shape[-1] % self.period), mode="reflect")
        x = x.reshape(*x.shape[:2], -1, self.period)
        return _run_stack(self.convs, self.conv_post, x)


class MSD(nn.Module):
    """Scale critic: grouped 1-D convs on the waveform resampled to ``sample_rate / rate``."""

    def __init__(self, rate: int = 1, sample_rate: int = 44100, channels: int = 1):
        super().__init__()
        specs = [(channels, 16, 15, 1, 1, 7), (16, 64, 41, 4, 4, 20), (64, 256, 41, 4, 16, 20),
                 (256, 1024, 41, 4, 64, 20), (1024, 1024, 41, 4, 256, 20), (1024, 1024, 5, 1, 1, 2)]
        self.convs = nn.ModuleList(
            _wn_conv(nn.Conv1d(cin, cout, k, s, groups=g, padding=p)) for cin, cout, k, s, g, p in specs
        )
        self.conv_post = _wn_conv(nn.Conv1d(1024, 1, 3, 1, padding=1), act=False)
        self.sample_rate = sample_rate
        self.rate = rate
        # Held outside the module tree: upstream checkpoints carry no resampling buffer.
        self._resampler = (SincResample(sample_rate, sample_rate // rate),) if rate != 1 else ()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self._resampler:
            x = self._resampler[0].to(x.device)(x)
        return _run_stack(self.convs, self.conv_post, x)


class MRD(nn.Module):
    """Resolution critic: complex STFT split into frequency bands, one conv stack per band, joined at the end.

    The STFT matches audiotools' ``match_stride`` mode: hop = window / 4, reflect padding of
    ``(window - hop) / 2`` each side plus enough on the right for a whole number of hops, periodic
    Hann window, centred frames, and the first and last two frames dropped, so frames = ceil(length / hop).
    """

    def __init__(self, window_length: int, hop_factor: float = 0.25, sample_rate: int = 44100,
                 bands: Sequence[Sequence[float]] = BANDS, channels: int = 1):
        super().__init__()
        self.window_length = window_length
        self.hop_length = int(window_length * hop_factor)
        if self.hop_length != window_length // 4:
            raise ValueError(f"hop_factor {hop_factor} must give hop = window / 4 (audiotools' match_stride)")
        self.sample_rate = sample_rate
        self.channels = channels
        n_bins = window_length // 2 + 1
        self.bands = [(int(lo * n_bins), int(hi * n_bins)) for lo, hi in bands]
        ch = 32

        def band_stack() -> nn.ModuleList:
            strides = [(1, 1), (1, 2), (1, 2), (1, 2)]
            convs = [_wn_conv(nn.Conv2d(2 if i == 0 else ch, ch, (3, 9), s, padding=(1, 4)))
                     for i, s in enumerate(strides)]
            return nn.ModuleList([*convs, _wn_conv(nn.Conv2d(ch, ch, (3, 3), (1, 1), padding=(1, 1)))])

        self.band_convs = nn.ModuleList(band_stack() for _ in self.bands)
        self.conv_post = _wn_conv(nn.Conv2d(ch, 1, (3, 3), (1, 1), padding=(1, 1)), act=False)

    def spectrogram(self, x: torch.Tensor) -> list[torch.Tensor]:
        length, hop, win = x.shape[-1], self.hop_length, self.window_length
        right = math.ceil(length / hop) * hop - length
        pad = (win - hop) // 2
        flat = F.pad(x.reshape(-1, 1, length), (pad, pad + right), mode="reflect").squeeze(1)
        window = torch.hann_window(win, device=x.device, dtype=x.dtype)
        spec = torch.stft(flat, n_fft=win, hop_length=hop, window=window, center=True, return_complex=True)
        spec = torch.view_as_real(spec[..., 2:-2])  # (B*C, F, T, 2)
        spec = spec.permute(0, 3, 2, 1)  # (B*C, 2, T, F)
        return [spec[..., lo:hi] for lo, hi in self.bands]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        fmap, outs = [], []
        for band, stack in zip(self.spectrogram(x), self.band_convs, strict=True):
            for layer in stack:
                band = layer(band)
                fmap.append(band)
            outs.append(band)
        fmap.append(self.conv_post(torch.cat(outs, dim=-1)))
        return fmap


class DACDiscriminator(nn.Module):
    """MPD per period, MSD per rate, MRD per FFT size, in that order at ``.discriminators``."""

    def __init__(self, channels: int = 1, rates: Sequence[int] = (), periods: Sequence[int] = PERIODS,
                 fft_sizes: Sequence[int] = FFT_SIZES, sample_rate: int = 44100,
                 bands: Sequence[Sequence[float]] = BANDS):
        super().__init__()
        critics: list[nn.Module] = [MPD(p, channels=channels) for p in periods]
        critics += [MSD(r, sample_rate=sample_rate, channels=channels) for r in rates]
        critics += [MRD(f, sample_rate=sample_rate, bands=bands, channels=channels) for f in fft_sizes]
        if not critics:
            raise ValueError("periods, rates and fft_sizes are all empty: the discriminator would have no critic")
        self.discriminators = nn.ModuleList(critics)

    @staticmethod
    def preprocess(y: torch.Tensor) -> torch.Tensor:
        """Remove DC and peak-normalise to 0.8, so the critics judge shape, not level."""
        y = y - y.mean(dim=-1, keepdim=True)
        return 0.8 * y / (y.abs().amax(dim=-1, keepdim=True) + 1e-9)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        x = self.preprocess(x)
        if torch.is_grad_enabled():  # upstream recomputes each critic in backward to bound memory
            return [checkpoint(d, x, use_reentrant=False) for d in self.discriminators]
        return [d(x) for d in self.discriminators]


def lsgan_or_hinge_terms(use_hinge: bool):
    """(discriminator term(fake, real), generator term(fake)) on logits, as DAC/upstream define them.

    Upstream's hinge discriminator term is ``relu(fake) + relu(1 - real)`` (margin at 0 for fakes, not
    the usual -1); kept as is because checkpoints were trained with it.
    """
    if use_hinge:
        return (lambda f, r: F.relu(f).mean() + F.relu(1 - r).mean()), (lambda f: F.relu(1 - f).mean())
    return (lambda f, r: (f**2).mean() + ((1 - r) ** 2).mean()), (lambda f: ((1 - f) ** 2).mean())


class DACGANLoss(nn.Module):
    """DAC discriminator plus its losses; the critics live at ``.discriminator``.

    ``loss(reals, fakes) -> (discriminator loss, generator loss, feature matching)``: each averaged
    over critics; feature matching is L1 between fake and (detached) real feature maps, averaged over
    each critic's layers (logits excluded), then over critics.
    """

    def __init__(self, use_hinge: bool = False, **discriminator_kwargs):
        super().__init__()
        self.use_hinge = use_hinge
        self.discriminator = DACDiscriminator(**discriminator_kwargs)

    def forward(self, fake: torch.Tensor, real: torch.Tensor):
        return self.discriminator(fake), self.discriminator(real)

    def discriminator_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        d_fake, d_real = self(fake.detach(), real)
        dis_term, _ = lsgan_or_hinge_terms(self.use_hinge)
        return sum(dis_term(f[-1], r[-1]) for f, r in zip(d_fake, d_real, strict=True)) / len(d_fake)

    def generator_loss(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d_fake, d_real = self(fake, real)
        _, gen_term = lsgan_or_hinge_terms(self.use_hinge)
        gen = sum(gen_term(f[-1]) for f in d_fake) / len(d_fake)
        feature = sum(
            sum(F.l1_loss(f[j], r[j].detach()) for j in range(len(f) - 1)) / (len(f) - 1)
            for f, r in zip(d_fake, d_real, strict=True)
        ) / len(d_fake)
        return gen, feature

    def loss(self, reals: torch.Tensor, fakes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gen, feature = self.generator_loss(fakes, reals)
        return self.discriminator_loss(fakes, reals), gen, feature
