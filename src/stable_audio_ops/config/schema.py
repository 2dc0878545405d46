"""A tiny typed view over JSON configs that validates at the edge.

Upstream reads configs with ``cfg["a"]["b"]`` deep inside constructors, so a typo surfaces as a bare
KeyError far from its cause. Here every read goes through :class:`ConfigNode`, which knows the file
it came from and the dotted key path, and raises :class:`~stable_audio_ops.errors.ConfigError` with
both plus what was expected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stable_audio_ops.errors import ConfigError, UnknownTypeError

log = logging.getLogger(__name__)

_MISSING: Any = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


# name shown to the user -> predicate
KINDS: dict[str, Callable[[Any], bool]] = {
    "an int": _is_int,
    "a number": _is_number,
    "a bool": lambda v: isinstance(v, bool),
    "a string": lambda v: isinstance(v, str),
    "an object": lambda v: isinstance(v, dict),
    "a list": lambda v: isinstance(v, list),
    "a list of ints": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    "a list of numbers": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
    "a list of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "a list of objects": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    "a positive int": lambda v: _is_int(v) and v > 0,
    "a non-negative int": lambda v: _is_int(v) and v >= 0,
    "a positive number": lambda v: _is_number(v) and v > 0,
    "a non-negative number": lambda v: _is_number(v) and v >= 0,
    "any value": lambda v: True,
}


@dataclass(frozen=True)
class ConfigNode:
    """A dict (or list) from a config file, plus where it lives (``source`` file, dotted ``path``)."""

    data: Any
    source: str = ""
    path: str = ""

    def _key_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else str(key)

    def error(self, message: str, key: str | int | None = None) -> ConfigError:
        path = self._key_path(key) if key is not None else self.path
        return ConfigError(self.source, path, message)

    def has(self, key: str) -> bool:
        return isinstance(self.data, dict) and key in self.data

    def get(self, key: str, kind: str = "any value", default: Any = _MISSING) -> Any:
        """Value at ``key`` checked against ``kind`` (a key of :data:`KINDS`).

        Missing keys raise unless a ``default`` is given; ``None`` values count as missing when a
        default exists (upstream configs often write ``null`` for "use the default").
        """
        if not isinstance(self.data, dict):
            raise self.error(f"expected an object, got {type(self.data).__name__}")
        if key not in self.data or (self.data[key] is None and default is not _MISSING):
            if default is _MISSING:
                raise self.error(f"missing required key (expected {kind})", key)
            return default
        value = self.data[key]
        check = KINDS[kind]
        if not check(value):
            raise self.error(f"expected {kind}, got {value!r}", key)
        return value

    def child(self, key: str | int, default: Any = _MISSING) -> ConfigNode:
        """Sub-node for a nested object or list element (``default`` = value used when absent)."""
        if isinstance(key, int):
            return ConfigNode(self.data[key], self.source, self._key_path(key))
        if not isinstance(self.data, dict):
            raise self.error(f"expected an object, got {type(self.data).__name__}")
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise self.error("missing required key (expected an object)", key)
            return ConfigNode(default, self.source, self._key_path(key))
        return ConfigNode(self.data[key], self.source, self._key_path(key))

    def children(self, key: str, default: Any = _MISSING) -> list[ConfigNode]:
        """Nodes for each element of a list-valued key."""
        node = self.child(key, default)
        if not isinstance(node.data, list):
            raise node.error(f"expected a list, got {node.data!r}")
        return [node.child(i) for i in range(len(node.data))]

    def choice(self, key: str, options: Iterable[str], default: Any = _MISSING) -> str:
        """A string that must be one of ``options``; the error lists them."""
        value = self.get(key, "a string", default)
        options = list(options)
        if value not in options:
            raise UnknownTypeError(
                self.source, self._key_path(key), f"unknown value {value!r}; known: {', '.join(options)}"
            )
        return value


def lookup(registry: dict[str, Any], name: str, what: str, node: ConfigNode | None = None, key: str = "type"):
    """Registry lookup with an error listing the known names (one helper for every registry)."""
    if name in registry:
        return registry[name]
    known = ", ".join(sorted(registry))
    source = node.source if node is not None else ""
    path = node._key_path(key) if node is not None else key
    raise UnknownTypeError(source, path, f"unknown {what} {name!r}; known: {known}")


def check_known_keys(node: ConfigNode, known: tuple[str, ...]) -> None:
    """Reject keys a constructor would not understand (upstream fails later with a bare TypeError)."""
    if not isinstance(node.data, dict):
        raise node.error(f"expected an object, got {node.data!r}")
    for key in node.data:
        if key not in known:
            raise node.error(f"unknown key; known keys: {', '.join(known)}", key)


def check_keys_ignoring(node: ConfigNode, known: Iterable[str], ignored: Mapping[str, str]) -> list[str]:
    """Like :func:`check_known_keys`, but keys in ``ignored`` (key -> why) only log a warning naming file and
    key path; returns the ignored keys found.

    Why both: a typo must fail loudly, yet configs in the wild carry keys that upstream reads (or once
    documented) and this package does not use; refusing them would make those configs unusable for no gain.
    """
    if not isinstance(node.data, dict):
        raise node.error(f"expected an object, got {node.data!r}")
    known = tuple(known)
    found = []
    for key in node.data:
        if key in known:
            continue
        if key in ignored:
            log.warning("%s: %s: ignored (%s)", node.source or "<config>", node._key_path(key), ignored[key])
            found.append(key)
            continue
        raise node.error(f"unknown key; known keys: {', '.join(known)}", key)
    return found
