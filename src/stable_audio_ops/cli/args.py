"""Command-line flags generated from an ini file, with upstream's (prefigure's) rules.

Upstream's ``train.py`` takes its flags from ``defaults.ini``: each key ``foo_bar`` of section
``[DEFAULTS]`` becomes ``--foo-bar``, typed by ``ast.literal_eval`` of the ini value, and only those
keys are accepted. We keep that contract so upstream command lines and ini files work unchanged,
with two deliberate differences: ``true``/``false`` are real booleans (prefigure turns ``false`` into
the truthy string ``"false"``), and the default ini is ``./defaults.ini`` when present, else the copy
packaged with stable-audio-ops (so ``python -m stable_audio_ops.cli.train`` works from any folder).
"""

from __future__ import annotations

import argparse
import ast
import configparser
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SECTION = "DEFAULTS"
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(text: str) -> bool:
    """``true/false`` (also yes/no, on/off, 1/0; any case) -> bool."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_ini_value(text: str) -> Any:
    """An ini value as a Python value: literal syntax, ``true``/``false`` booleans, else the raw string."""
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        return stripped


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise argparse.ArgumentTypeError(f"expected a Python literal, got {text!r}") from exc


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc


def flag_type(default: Any) -> Callable[[str], Any]:
    """The parser for a flag whose ini default is ``default``."""
    if isinstance(default, bool):
        return parse_bool
    if isinstance(default, int):
        return _int
    if isinstance(default, float):
        return _float
    if isinstance(default, (list, tuple, dict)):
        return _literal
    return str  # strings, and None (an optional string)


@dataclass(frozen=True)
class IniDefaults:
    path: Path
    values: dict[str, Any]


def packaged_ini() -> Path:
    return Path(str(resources.files("stable_audio_ops.cli") / "defaults.ini"))


def resolve_ini_path(config_file: str | None) -> Path:
    """``--config-file`` if given (must exist), else ./defaults.ini, else the packaged defaults."""
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"--config-file {config_file}: no such file")
        return path
    local = Path("defaults.ini")
    return local if local.is_file() else packaged_ini()


def read_ini_defaults(path: str | Path) -> IniDefaults:
    """Keys and typed values of section ``[DEFAULTS]`` (raw: no ``%`` interpolation)."""
    path = Path(path)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep key case as written
    with open(path, encoding="utf-8") as f:
        parser.read_file(f)
    if not parser.has_section(SECTION):
        raise ValueError(f"{path}: no [{SECTION}] section")
    values = {key: parse_ini_value(raw) for key, raw in parser.items(SECTION)}
    return IniDefaults(path=path, values=values)


def build_parser(defaults: IniDefaults, prog: str | None = None, description: str | None = None):
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        allow_abbrev=False,  # an abbreviation of a flag is an unknown flag, not a silent match
        epilog=f"Flags and defaults come from {defaults.path}.",
    )
    parser.add_argument("--config-file", default=None, help="ini file with a [DEFAULTS] section to take the flags from")
    for key, value in defaults.values.items():
        flag = "--" + key.replace("_", "-")
        kind = type(value).__name__ if value is not None else "str"
        parser.add_argument(
            flag, dest=key, type=flag_type(value), default=value, metavar=kind.upper(), help=f"(default: {value!r})"
        )
    return parser


def parse_args_from_ini(
    argv: Sequence[str] | None = None, prog: str | None = None, description: str | None = None
) -> argparse.Namespace:
    """Parse ``argv`` against the flags of the selected ini; unknown flags are argparse errors naming them."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config-file", default=None)
    known, _ = pre.parse_known_args(argv)
    try:
        path = resolve_ini_path(known.config_file)
        defaults = read_ini_defaults(path)
    except (OSError, ValueError, configparser.Error) as exc:
        pre.prog = prog or pre.prog
        pre.error(str(exc))
    parser = build_parser(defaults, prog=prog, description=description)
    args = parser.parse_args(argv)
    args.config_file = str(defaults.path)
    return args
