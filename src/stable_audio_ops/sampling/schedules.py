"""Noise-level schedules for sampling, and the timestep shifts that warp them.

Two conventions live side by side, as in stable-audio-tools 0.0.20:

- *t-space* (``t`` in [0, 1], 1 = pure noise): the in-repo samplers (v-DDIM, rectified-flow
  Euler/RK4/DPM++/ping-pong) walk a schedule from :func:`build_schedule`, optionally warped by a
  distribution shift (the model's ``sampling_dist_shift``, :class:`LogSNRShift` by default).
- *sigma-space* (Karras ``x = x0 + sigma * eps``): the k-diffusion family walks a descending list of
  sigmas (:func:`get_sigmas_polyexponential`, :func:`get_sigmas_karras`) ending in 0. A v-objective
  model sees them through the VDenoiser mapping ``t = atan(sigma) * 2 / pi``.

Every function here is deterministic and cheap; the samplers never build schedules themselves, so a
schedule can be inspected, plotted or tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch

from stable_audio_ops.config.schema import ConfigNode, lookup

# ----------------------------------------------------------------------------------------------
# v-objective geometry (cosine schedule) and the VDenoiser's sigma <-> t mapping
# ----------------------------------------------------------------------------------------------


def t_to_alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal and noise scales of the v objective at time ``t``: ``(cos(pi t / 2), sin(pi t / 2))``."""
    return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)


def alpha_sigma_to_t(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`t_to_alpha_sigma` (valid for any positive pair, not only unit-norm ones)."""
    return torch.atan2(sigma, alpha) / math.pi * 2


def sigma_to_t(sigma: torch.Tensor) -> torch.Tensor:
    """Karras sigma -> v-objective time, as k-diffusion's VDenoiser maps it: ``atan(sigma) * 2 / pi``."""
    return sigma.atan() / math.pi * 2


def t_to_sigma(t: torch.Tensor) -> torch.Tensor:
    """v-objective time -> Karras sigma (``tan(pi t / 2)``); infinite at ``t = 1``."""
    return (t * math.pi / 2).tan()


# ----------------------------------------------------------------------------------------------
# Distribution shifts (warp a linear t grid; also used by training to skew the timestep sampler)
# ----------------------------------------------------------------------------------------------


class DistShift(Protocol):
    """Anything with ``shift(t, seq_len) -> t'`` (monotone map of [0, 1] onto itself)."""

    def shift(self, t: torch.Tensor, seq_len: int) -> torch.Tensor: ...


class IdentityDistributionShift:
    """No warp: the schedule stays linear in t."""

    def shift(self, t: torch.Tensor, seq_len: int) -> torch.Tensor:
        return t

    def __repr__(self) -> str:
        return "IdentityDistributionShift()"


class DistributionShift:
    """The training-time timestep shift of upstream's rectified-flow objective: ``t' = 1 - e^mu / (e^mu + (1/(1-t) - 1))``.

    ``mu = -(base_shift + (max_shift - base_shift) * (L - min_length) / (max_length - min_length))``
    with ``L`` the latent length clamped to ``[min_length, max_length]``: longer sequences get more
    noise, because long audio keeps structure visible at noise levels that wipe out short clips.
    Written in the equivalent odds form ``t' = t / (e^mu (1 - t) + t)``, which is finite at t = 1.
    ``use_sine`` additionally maps ``t' -> sin(pi t' / 2)``.
    """

    def __init__(self, base_shift: float = 0.5, max_shift: float = 1.15, max_length: int = 4096,
                 min_length: int = 256, use_sine: bool = False):
        if max_length <= min_length:
            raise ValueError(f"max_length ({max_length}) must exceed min_length ({min_length})")
        self.base_shift = base_shift
        self.max_shift = max_shift
        self.max_length = max_length
        self.min_length = min_length
        self.use_sine = use_sine

    def mu(self, seq_len: int) -> float:
        length = min(max(seq_len, self.min_length), self.max_length)
        frac = (length - self.min_length) / (self.max_length - self.min_length)
        return -(self.base_shift + (self.max_shift - self.base_shift) * frac)

    def shift(self, t: torch.Tensor, seq_len: int) -> torch.Tensor:
        e_mu = math.exp(self.mu(seq_len))
        out = t / (e_mu * (1 - t) + t)
        if self.use_sine:
            out = torch.sin(out * math.pi / 2)
        return out

    def __repr__(self) -> str:
        return (f"DistributionShift(base_shift={self.base_shift}, max_shift={self.max_shift}, "
                f"max_length={self.max_length}, min_length={self.min_length}, use_sine={self.use_sine})")


class FluxDistributionShift:
    """Flux/SD3-style shift ``t' = a t / (1 + (a - 1) t)``, ``a`` log-linear in the sequence length."""

    def __init__(self, min_length: int = 256, max_length: int = 4096, alpha_min: float = 1.0,
                 alpha_max: float = 1.0):
        self.min_length = min_length
        self.max_length = max_length
        self.alpha_min = alpha_min
        self.alpha_max = alpha_max

    def alpha(self, seq_len: int) -> float:
        if self.alpha_min == self.alpha_max or self.max_length == self.min_length:
            return float(self.alpha_min)
        length = min(max(seq_len, self.min_length), self.max_length)
        frac = (math.log(length) - math.log(self.min_length)) / (math.log(self.max_length) - math.log(self.min_length))
        log_a = math.log(self.alpha_min) + frac * (math.log(self.alpha_max) - math.log(self.alpha_min))
        return math.exp(log_a)

    def shift(self, t: torch.Tensor, seq_len: int) -> torch.Tensor:
        a = self.alpha(seq_len)
        return a * t / (1 + (a - 1.0) * t)

    def __repr__(self) -> str:
        return (f"FluxDistributionShift(min_length={self.min_length}, max_length={self.max_length}, "
                f"alpha_min={self.alpha_min}, alpha_max={self.alpha_max})")


class LogSNRShift:
    """Spaces a linear t grid uniformly in log-SNR between ``logsnr_end`` and ``logsnr_start``.

    ``logsnr = logsnr_end - t * (logsnr_end - logsnr_start)``, ``t' = sigmoid(-logsnr)``, with the
    endpoints kept exactly (0 -> 0, 1 -> 1) so a schedule still starts from pure noise and ends on
    clean data. ``logsnr_start = anchor_logsnr - rate * log2(seq_len / anchor_length)`` lowers the
    starting SNR by ``rate`` per doubling of the sequence; 0.0.20's default sampling shift uses
    ``rate=0``, which makes the schedule independent of the length.
    """

    def __init__(self, anchor_length: int = 2000, anchor_logsnr: float = -6.2, rate: float = 1.0,
                 logsnr_end: float = 2.0):
        self.anchor_length = anchor_length
        self.anchor_logsnr = anchor_logsnr
        self.rate = rate
        self.logsnr_end = logsnr_end

    def logsnr_start(self, seq_len: int | None) -> float:
        if self.rate == 0:
            return float(self.anchor_logsnr)
        if seq_len is None or seq_len < 1:
            raise ValueError("LogSNRShift with rate != 0 needs the sequence length (latent frames)")
        return self.anchor_logsnr - self.rate * math.log2(seq_len / self.anchor_length)

    def shift(self, t: torch.Tensor, seq_len: int | None) -> torch.Tensor:
        start = self.logsnr_start(seq_len)
        logsnr = self.logsnr_end - t * (self.logsnr_end - start)
        out = torch.sigmoid(-logsnr)
        out = torch.where(t <= 0, torch.zeros_like(out), out)
        return torch.where(t >= 1, torch.ones_like(out), out)

    def __repr__(self) -> str:
        return (f"LogSNRShift(anchor_length={self.anchor_length}, anchor_logsnr={self.anchor_logsnr}, "
                f"rate={self.rate}, logsnr_end={self.logsnr_end})")


# Upstream's `_create_dist_shift` types ("type" key of distribution_shift_options /
# sampling_distribution_shift_options; "full" is the default).
DIST_SHIFTS: dict[str, Callable[..., Any]] = {
    "none": IdentityDistributionShift,
    "full": DistributionShift,
    "flux": FluxDistributionShift,
    "logsnr": LogSNRShift,
}


def create_dist_shift(options: dict, node: ConfigNode | None = None) -> DistShift:
    """Build a shift from a config block such as ``{"type": "logsnr", "rate": 0}``.

    Unknown types and unknown keyword names raise errors that name the config key.
    """
    node = node if node is not None else ConfigNode(options, "<distribution shift options>", "")
    kind = node.get("type", "a string", "full")
    cls = lookup(DIST_SHIFTS, kind, "distribution shift type", node)
    kwargs = {k: v for k, v in options.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise node.error(f"invalid options for distribution shift {kind!r}: {exc}") from exc


def default_sampling_dist_shift() -> LogSNRShift:
    """0.0.20's inference shift when a config has no ``sampling_distribution_shift_options``."""
    return LogSNRShift(rate=0, anchor_logsnr=-6.2, logsnr_end=2.0)


# ----------------------------------------------------------------------------------------------
# t-space schedules
# ----------------------------------------------------------------------------------------------


def build_schedule(steps: int, sigma_max: float = 1.0, dist_shift: DistShift | None = None,
                   seq_len: int | None = None, include_endpoint: bool = True,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """0.0.20's t schedule: ``linspace(sigma_max, 0)`` warped by ``dist_shift``, first value = sigma_max.

    For ``sigma_max < 1`` with a shift, the linear grid starts at the shift's preimage of ``sigma_max``
    (see :func:`_shift_preimage`) so that the schedule stays monotone; at ``sigma_max = 1`` (plain
    generation) the result is exactly 0.0.20's.

    ``include_endpoint=True`` (rectified flow) gives ``steps + 1`` values ending in 0: each step goes
    from ``t[i]`` to ``t[i + 1]``. ``include_endpoint=False`` (v DDIM) gives ``steps`` values, all > 0:
    DDIM evaluates the model at each and returns the last clean prediction. ``seq_len`` (latent frames)
    feeds length-dependent shifts.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    length = max(int(seq_len), 1) if seq_len is not None else None
    top = sigma_max
    if dist_shift is not None and sigma_max < 1:
        top = _shift_preimage(dist_shift, sigma_max, length)
        if top is None:  # the shift never comes down to this level: walk it linearly
            dist_shift = None
            top = sigma_max
    t = torch.linspace(top, 0, steps + 1, device=device)
    if not include_endpoint:
        t = t[:-1]
    if dist_shift is not None:
        t = dist_shift.shift(t, length)
        # The sampler mixed the init data at sigma_max, so the walk must start exactly there.
        t[0] = sigma_max
    return t


def _shift_preimage(dist_shift: DistShift, level: float, seq_len: int | None) -> float | None:
    """The ``u`` in (0, 1] with ``shift(u) == level``, or None when the shift skips that level.

    0.0.20 warps ``linspace(level, 0)`` and then overwrites the first value with ``level``; the warped
    second value can exceed ``level``, so an audio-to-audio schedule climbed back up before descending
    (with the default LogSNRShift every level below ``sigmoid(-2) ~ 0.119`` was affected). Starting the
    linear grid at the preimage keeps the spacing law and gives a monotone schedule that begins exactly
    at ``level``. LogSNRShift jumps from 0 to ``sigmoid(-logsnr_end)``; levels inside that jump have no
    preimage. Every shift here is increasing, so bisection finds the preimage.
    """

    def shifted(u: float) -> float:
        return float(dist_shift.shift(torch.tensor([u], dtype=torch.float64), seq_len)[0])

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if shifted(mid) < level:
            lo = mid
        else:
            hi = mid
    if abs(shifted(hi) - level) > 1e-6 * max(level, 1e-6) + 1e-9:
        return None
    return hi


def logsnr_uniform_rf_schedule(steps: int, sigma_max: float = 1.0, logsnr_max_default: float = -6.0,
                               logsnr_end: float = 2.0, device: str | torch.device = "cpu") -> torch.Tensor:
    """Rectified-flow schedule uniform in log-SNR (GitHub-main ping-pong/euler schedule).

    Log-SNR runs linearly from ``logsnr_max_default`` (when ``sigma_max == 1``; else
    ``log((1 - s) / s)``) to ``logsnr_end``; ``t = sigmoid(-logsnr)``; the first value is
    ``sigma_max`` and the last is exactly 0 (``steps + 1`` values).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 < sigma_max <= 1:
        raise ValueError(f"sigma_max must be in (0, 1] for rectified flow, got {sigma_max}")
    start = logsnr_max_default if sigma_max >= 1 else math.log((1 - sigma_max) / sigma_max)
    logsnr = torch.linspace(start, logsnr_end, steps + 1, device=device)
    t = torch.sigmoid(-logsnr)
    t[0] = sigma_max
    t[-1] = 0
    return t


# ----------------------------------------------------------------------------------------------
# sigma-space schedules (k-diffusion family); all end with an appended 0
# ----------------------------------------------------------------------------------------------


def _append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def _check_sigma_range(sigma_min: float, sigma_max: float) -> None:
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def get_sigmas_polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0,
                               device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` sigmas polynomial in log sigma (rho = 1: geometric), then 0: the v sampler default."""
    _check_sigma_range(sigma_min, sigma_max)
    ramp = torch.linspace(1, 0, n, device=device) ** rho
    sigmas = torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))
    return _append_zero(sigmas)


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0,
                      device: str | torch.device = "cpu") -> torch.Tensor:
    """Karras et al. (2022) schedule: ``n`` sigmas uniform in ``sigma^(1/rho)``, then 0."""
    _check_sigma_range(sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, n, device=device)
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((max_inv + ramp * (min_inv - max_inv)) ** rho)


def get_sigmas_exponential(n: int, sigma_min: float, sigma_max: float,
                           device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` sigmas uniform in log sigma, then 0 (polyexponential with rho = 1)."""
    _check_sigma_range(sigma_min, sigma_max)
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, device=device).exp()
    return _append_zero(sigmas)


SIGMA_SCHEDULES: dict[str, Callable[..., torch.Tensor]] = {
    "polyexponential": get_sigmas_polyexponential,
    "karras": get_sigmas_karras,
    "exponential": get_sigmas_exponential,
}
