"""`--help` of every console script shows each option's default; sao-generate's lists the sampler names."""

from __future__ import annotations

import argparse
import importlib

import pytest

from stable_audio_ops.cli.help_format import HelpFormatter, with_more_help
from stable_audio_ops.sampling.samplers import SAMPLERS

PARSERS = ("generate", "pre_encode", "unwrap", "serve")


def _help(parser: argparse.ArgumentParser, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option, nothing wrapped
    return parser.format_help()


@pytest.mark.parametrize("command", PARSERS)
def test_every_option_with_a_default_shows_it(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = importlib.import_module(f"stable_audio_ops.cli.{command}").build_parser()
    assert parser.formatter_class is HelpFormatter
    lines = _help(parser, monkeypatch).splitlines()
    options = [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS
               and a.default not in (None, False, "", [], argparse.SUPPRESS)]
    assert options
    for action in options:
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(action.option_strings[0]))
        follows = lines[at + 1] if at + 1 < len(lines) and not lines[at + 1].strip().startswith("-") else ""
        line = lines[at] + follows  # a long flag puts its help on the next line
        # ours: "(default: X)"; or the option's own text says what the default is (e.g. "default: current folder")
        assert f"(default: {action.default})" in line or "default" in (action.help or ""), line


def test_generate_help_lists_every_registered_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _help(importlib.import_module("stable_audio_ops.cli.generate").build_parser(), monkeypatch)
    for objective, registry in SAMPLERS.items():
        assert objective in text
        assert [name for name in registry if name not in text] == [], objective
    assert "dpmpp-3m-sde" in text and "pingpong" in text


def test_formatter_leaves_out_defaults_that_mean_not_given_and_evaluates_lists_lazily(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--steps", type=int, default=50, help="sampler steps")
    parser.add_argument("--name", default=None, help="a name")
    parser.add_argument("--quiet", action="store_true", help="say less")
    with_more_help(parser.add_argument("--kind", default="a", help="kind"), lambda: calls.append(1) or "a, b")
    assert calls == []  # nothing computed while parsing
    parser.parse_args(["--kind", "b"])
    assert calls == []
    text = _help(parser, monkeypatch)
    assert "sampler steps (default: 50)" in text and "kind: a, b (default: a)" in text and calls == [1]
    assert "a name" in text and "(default: None)" not in text and "(default: False)" not in text
