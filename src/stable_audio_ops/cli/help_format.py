"""``--help`` for every command: each option's default, and lists (e.g. sampler names) computed only when shown.

Why not argparse's ``ArgumentDefaultsHelpFormatter``: it prints ``(default: None)`` / ``(default: False)`` for
options whose default means "not given", repeats a default the help text already explains, and cannot list
names held by a registry that imports torch (the commands import torch only after parsing, so that ``--help``
and flag errors answer at once). Here an option may carry ``more_help``, a function called only while the help
is printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``more_help()`` and ``(default: X)`` to an option's help; defaults that mean "not given" (None,
    False, empty) and defaults the text already states are left out."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        more: Callable[[], str] | None = getattr(action, "more_help", None)
        if more is not None:
            text = f"{text}: {more()}" if text else more()
        shown = action.default not in (None, False, "", [], argparse.SUPPRESS)
        if action.option_strings and shown and "default" not in text:
            text = f"{text} (default: %(default)s)" if text else "default: %(default)s"
        return text


def with_more_help(action: argparse.Action, more: Callable[[], str]) -> argparse.Action:
    """``action`` whose help ends with ``more()``, evaluated only when ``--help`` prints it."""
    action.more_help = more  # type: ignore[attr-defined]
    return action


__all__ = ["HelpFormatter", "with_more_help"]
