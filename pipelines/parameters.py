"""Reading ``params:<section>`` in nodes: every value comes from ``conf/base/parameters_<pipeline>.yml``.

Why: a ``params.get(key, default)`` in a node is a second default beside the YAML, and the two drift
(the evaluation seed was 1234 in YAML and 0 in code; the latent mode ``mean`` in YAML and ``sample`` in
code). Nodes read through :class:`Parameters` instead, so a key missing from the YAML fails at once with
the full parameter path and the file to add it to, rather than silently running on a value nobody chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stable_audio_ops.errors import ConfigError


class MissingParameterError(ConfigError, KeyError):
    """A parameter a node reads is not in the parameters YAML (a KeyError that names the dotted path)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class Parameters:
    """A read-only view of one ``params:<section>`` mapping whose lookups take dotted paths.

    ``Parameters(params, "evaluation")["generation.seed"]`` returns the value or raises
    :class:`MissingParameterError` naming ``evaluation.generation.seed`` and ``parameters_evaluation.yml``.
    """

    def __init__(self, data: Mapping[str, Any], section: str) -> None:
        self.data = data
        self.section = section

    @property
    def source(self) -> str:
        return f"conf/base/parameters_{self.section.split('.')[0]}.yml"

    def __getitem__(self, path: str) -> Any:
        node: Any = self.data
        for key in path.split("."):
            if not isinstance(node, Mapping) or key not in node:
                full = f"{self.section}.{path}"
                raise MissingParameterError(self.source, full,
                                            f"missing parameter {full!r} (nodes have no defaults: set it in the YAML)")
            node = node[key]
        return node

    def __contains__(self, path: str) -> bool:
        try:
            self[path]
        except MissingParameterError:
            return False
        return True

    def sub(self, path: str) -> Parameters:
        """The mapping at ``path`` as a :class:`Parameters` of its own (paths in errors stay complete)."""
        value = self[path]
        if not isinstance(value, Mapping):
            raise ConfigError(self.source, f"{self.section}.{path}", f"expected a mapping, got {value!r}")
        return Parameters(value, f"{self.section}.{path}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)
