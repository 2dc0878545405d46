"""What the commands show of the library's log: its ``stable_audio_ops.*`` records, as plain lines on stdout.

The library never prints; it logs (``log = logging.getLogger(__name__)``). A command calls
:func:`configure_logging` once in ``main`` so its user sees those messages where the library used to print
them (stdout): INFO records as the bare message (``seed: 123``, ``resuming from ...``), warnings and errors
prefixed with their level (``warning: ...``). Progress bars and the commands' own ``error:`` lines stay on
stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

LIBRARY_LOGGER = "stable_audio_ops"


class _CommandFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


class _CommandHandler(logging.StreamHandler):
    """The handler this module adds (so calling :func:`configure_logging` again replaces it). Without an explicit
    stream it writes to whatever ``sys.stdout`` is at the time of the record (tests swap it)."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream if stream is not None else sys.stdout)
        self._follow_stdout = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stdout:
            self.stream = sys.stdout
        super().emit(record)


def configure_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> logging.Logger:
    """Show the library's records at ``level`` and above on ``stream`` (default: ``sys.stdout``).

    Idempotent: a second call (e.g. ``main`` run twice in one process) swaps the stream and level of the
    handler it added instead of adding another one. Records still propagate to the root logger, so an
    application's own logging setup (pytest's ``caplog``, Kedro) sees them too.
    """
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO
    logger = logging.getLogger(LIBRARY_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _CommandHandler):
            logger.removeHandler(handler)
    handler = _CommandHandler(stream)
    handler.setFormatter(_CommandFormatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    return logger


__all__ = ["LIBRARY_LOGGER", "configure_logging"]
