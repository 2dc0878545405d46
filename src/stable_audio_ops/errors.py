"""Exceptions users see. Each names the file and the key path so a bad config is fixable at a glance."""

from __future__ import annotations


class StableAudioOpsError(Exception):
    """Base class for errors raised by stable-audio-ops."""


class ConfigError(StableAudioOpsError, ValueError):
    """A config file is missing a key or holds a value of the wrong kind.

    Rendered as ``<source>: <key.path>: <message>``, e.g.
    ``model_config.json: model.encoder.config.strides: expected a list of ints, got 'x'``.
    """

    def __init__(self, source: str, key_path: str, message: str):
        self.source = source
        self.key_path = key_path
        self.message = message
        where = f"{source}: " if source else ""
        path = f"{key_path}: " if key_path else ""
        super().__init__(f"{where}{path}{message}")


class UnknownTypeError(ConfigError):
    """A registry lookup failed; the message lists the names that are known."""


class CheckpointError(StableAudioOpsError):
    """A checkpoint could not be read or does not fit the model (with the key report)."""


class DatasetError(StableAudioOpsError):
    """A dataset cannot produce samples (e.g. no readable audio file at all)."""


class NonFiniteOutputError(StableAudioOpsError, ValueError):
    """A generation produced NaN or Inf samples.

    Why an error and not a warning: written as PCM, NaN turns into full-scale noise (or silence) that looks like
    a result; every front end (CLI, HTTP API, pyfunc, evaluation) must fail instead of writing or returning it.
    """


class GenerationCancelled(StableAudioOpsError):
    """A generation was stopped between two sampler steps because its ``should_stop`` said so.

    Why: the server runs one model call at a time; a batch whose clients have all disconnected would
    otherwise keep the worker busy to the last step while new requests wait behind it.
    """
