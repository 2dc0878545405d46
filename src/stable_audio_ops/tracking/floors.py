"""Promotion floors: absolute minimums a model version must reach before it can become ``champion``.

Why: the promotion rule (:func:`stable_audio_ops.tracking.registry.compare`) is relative — it asks
whether the challenger beats the champion. With no champion yet, anything wins, so the first version
of a broken model (a collapsed autoencoder, a generator that ignores its caption) would become the
champion that serving loads. Floors are absolute: a version below any floor is registered and keeps
its ``challenger`` alias, but is never promoted, and the decision names each failed floor with its
value, so a person sees why at a glance.

A floor is ``metric: minimum`` (higher is better) or ``metric: {max: x}`` (lower is better, e.g. kid);
``{min: x}`` works too. A metric that is missing or not finite fails its floor: nothing proves it is
good enough.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stable_audio_ops.errors import ConfigError

BLOCKED_PREFIX = "not promoted: "


@dataclass(frozen=True)
class Floor:
    """``metric`` must be ``>= minimum`` and/or ``<= maximum``."""

    metric: str
    minimum: float | None = None
    maximum: float | None = None

    @classmethod
    def parse(cls, metric: str, raw: Any, source: str = "promotion floors") -> Floor:
        """``0.9`` -> minimum 0.9; ``{max: 0.1}`` -> maximum 0.1; ``{min: a, max: b}`` -> both."""
        if isinstance(raw, Mapping):
            if set(raw) - {"min", "max"} or not raw:
                raise ConfigError(source, str(metric), f"a floor is a number or {{min|max: x}}, got {dict(raw)}")
            return cls(str(metric), _number(raw.get("min"), source, metric), _number(raw.get("max"), source, metric))
        if isinstance(raw, bool) or _number(raw, source, metric) is None:
            raise ConfigError(source, str(metric), f"a floor is a number or {{min|max: x}}, got {raw!r}")
        return cls(str(metric), minimum=float(raw))

    def failure(self, metrics: Mapping[str, Any]) -> str | None:
        """Why ``metrics`` fail this floor, in words (``"pitch_acc_crepe 0.00 < floor 0.90"``); None when they pass."""
        value = finite_or_none(metrics.get(self.metric))
        if value is None:
            return f"{self.metric} missing ({self.describe()})"
        if self.minimum is not None and value < self.minimum:
            return f"{self.metric} {_fmt(value)} < floor {_fmt(self.minimum)}"
        if self.maximum is not None and value > self.maximum:
            return f"{self.metric} {_fmt(value)} > ceiling {_fmt(self.maximum)}"
        return None

    def describe(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"floor {_fmt(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"ceiling {_fmt(self.maximum)}")
        return ", ".join(parts)


def _number(raw: Any, source: str, metric: str) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(source, str(metric), f"floor value must be a number, got {raw!r}") from exc


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None (missing, NaN, inf, text)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: float) -> str:
    """Two decimals (as the report shows accuracies), more digits for small numbers such as KID."""
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


def parse_floors(raw: Mapping[str, Any] | None, source: str = "promotion floors") -> list[Floor]:
    """Floors from the parameters (``{metric: minimum | {min: x} | {max: x}}``); None or {} -> no floors."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "", f"floors must be a mapping metric -> minimum, got {type(raw).__name__}")
    return [Floor.parse(metric, value, source) for metric, value in raw.items()]


def floor_failures(metrics: Mapping[str, Any], floors: Sequence[Floor]) -> list[str]:
    """Each failed floor in words, in the configured order (empty = all floors passed)."""
    return [reason for reason in (f.failure(metrics) for f in floors) if reason is not None]


def promotion_blockers(metrics: Mapping[str, Any], floors: Sequence[Floor], *, collapse: str | None = None,
                       upstream: str | None = None) -> list[str]:
    """Everything that rules a version out of promotion: failed floors, a collapse (autoencoder output that
    does not depend on its input) and an upstream failure (a diffusion model whose autoencoder failed)."""
    return floor_failures(metrics, floors) + [reason for reason in (collapse, upstream) if reason]


def blocked_reason(blockers: Sequence[str]) -> str:
    """``"not promoted: a; b"`` — the promotion reason of a blocked version."""
    return BLOCKED_PREFIX + "; ".join(blockers)


def autoencoder_blocker(autoencoder_version: str | int | None, autoencoder_blockers: Sequence[str],
                        trained_on_version: str | int | None) -> str | None:
    """The blocker of a diffusion model trained on an autoencoder version that is itself not promotable
    (its latents come from that autoencoder, so its audio cannot be better); None otherwise."""
    if not autoencoder_blockers or trained_on_version is None or str(trained_on_version) != str(autoencoder_version):
        return None
    why = "; ".join(autoencoder_blockers)
    return f"trained on autoencoder v{autoencoder_version}, which is not promotable ({why})"
