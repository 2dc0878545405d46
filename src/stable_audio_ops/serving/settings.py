"""Server settings: one frozen dataclass read from ``SAO_*`` environment variables (CLI flags override).

Why a plain dataclass and not pydantic-settings: the server needs a dozen scalars, and keeping them
in one place with explicit parsing gives error messages that name the variable, without another
dependency. Every limit here is enforced per request and reported by ``GET /v1/models``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.inference.generation import PRECISIONS

ENV_PREFIX = "SAO_"


@dataclass(frozen=True)
class ServeSettings:
    """Everything the server needs to know; ``repr`` hides the token."""

    model: str = ""  # checkpoint path, model folder, or models:/NAME@alias | models:/NAME/version
    model_config: str | None = None  # JSON config when the checkpoint has none embedded
    adapter: str | None = None  # LoRA adapter file applied onto the model without merging (fine_tune pipeline)
    model_name: str | None = None  # id shown by /v1/models (default: derived from the source)
    mlflow_tracking_uri: str | None = None  # None: MLflow's current URI (the serve command: the project store)
    device: str = "auto"  # auto = cuda when available, else cpu
    max_seconds: float = 47.0  # also capped by the model's seconds_total conditioner range
    max_steps: int = 250
    max_batch: int = 16  # items in one model call; also the most variations one request may ask for
    max_prompt_length: int = 512  # characters
    queue_size: int = 64  # items waiting (not yet running) before new work is answered with 503
    batch_window_ms: float = 10.0  # how long the oldest waiting request may wait for companions
    api_token: str | None = field(default=None, repr=False)  # bearer token for /v1/*; None = no auth
    warmup: bool = True
    fixed_length: bool = False  # generate the model's sample_size and trim (all durations batch together)
    job_ttl_s: float = 600.0  # finished jobs (and their audio) are dropped after this
    max_jobs: int = 256  # finished jobs kept at most (oldest dropped first)
    torch_threads: int | None = None  # torch.set_num_threads for the worker (None = torch's default)
    precision: str = "fp32"  # "bf16": the diffusion network under bfloat16 autocast (inference.generation)

    def __post_init__(self) -> None:
        checks = [
            (self.max_seconds > 0, "max_seconds must be > 0"),
            (self.max_steps >= 1, "max_steps must be >= 1"),
            (self.max_batch >= 1, "max_batch must be >= 1"),
            (self.max_prompt_length >= 0, "max_prompt_length must be >= 0"),
            (self.queue_size >= 1, "queue_size must be >= 1"),
            (self.batch_window_ms >= 0, "batch_window_ms must be >= 0"),
            (self.job_ttl_s > 0, "job_ttl_s must be > 0"),
            (self.max_jobs >= 1, "max_jobs must be >= 1"),
            (self.torch_threads is None or self.torch_threads >= 1, "torch_threads must be >= 1"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError("serve settings", "", message)
        if self.api_token is not None and not self.api_token.strip():
            object.__setattr__(self, "api_token", None)

    @property
    def auth_enabled(self) -> bool:
        return self.api_token is not None

    def replace(self, **changes: object) -> ServeSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ServeSettings:
        """Read ``SAO_<FIELD>`` variables (``SAO_MAX_STEPS``, ``SAO_API_TOKEN``, ...); ``overrides`` win.

        Overrides that are ``None`` are ignored, so unset CLI flags fall through to the environment.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in environ:
                values[f.name] = _parse(name, environ[name], f.default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError("serve settings", "", f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)


def _parse(name: str, raw: str, default: object) -> object:
    """Parse an environment string by the type of the field's default."""
    raw = raw.strip()
    try:
        if isinstance(default, bool):
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if name == ENV_PREFIX + "TORCH_THREADS":
            return int(raw) if raw else None
    except ValueError:
        kind = type(default).__name__
        raise ConfigError("environment", name, f"{raw!r} is not a valid {kind}") from None
    return raw or default
