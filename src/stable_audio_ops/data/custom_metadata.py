"""Loading ``custom_metadata_module`` hooks: a Python file path (upstream) or a dotted module name (ours).

Upstream imports the file once in the main process and ships the function to DataLoader workers
with dill. Here :class:`CustomMetadataHook` keeps only the spec string and imports lazily in each
process, so datasets pickle with the standard library (spawn/forkserver workers work too), and
the import is still validated eagerly at construction so a bad module fails before training starts.

Contract for the module: ``get_custom_metadata(info: dict, audio: Tensor | None) -> dict``; the
result is merged into the item's metadata. Reserved keys are handled by the dataset:
``__reject__`` (truthy: drop the item and draw another) and ``__audio__`` (``{key: tensor}`` of extra
audio, pad/cropped and channel-converted like the main audio, stored under ``key``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from stable_audio_ops.errors import ConfigError

FUNCTION_NAME = "get_custom_metadata"

MetadataFn = Callable[[dict, Any], dict]


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec or os.path.isfile(spec)


def _import_file(path: str) -> ModuleType:
    # A unique module name per file so two metadata files never overwrite each other in sys.modules.
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]
    name = f"_sao_custom_metadata_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_custom_metadata_fn(
    spec: str, source: str = "", key_path: str = "custom_metadata_module"
) -> MetadataFn:
    """Import ``spec`` (a ``.py`` file path or a dotted module name) and return its ``get_custom_metadata``.

    Errors are :class:`ConfigError` naming the config file (``source``), the key (``key_path``) and
    the module, whether the module is missing, fails to import, or lacks the function.
    """
    as_path = _looks_like_path(spec)
    try:
        if as_path:
            if not os.path.isfile(spec):
                raise ConfigError(source, key_path, f"custom metadata module file not found: {spec!r}")
            module = _import_file(spec)
        else:
            module = importlib.import_module(spec)
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        raise ConfigError(
            source, key_path, f"cannot import custom metadata module {spec!r}: {exc} "
            "(give a .py file path or an importable dotted module name)"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            source, key_path, f"custom metadata module {spec!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    fn = getattr(module, FUNCTION_NAME, None)
    if not callable(fn):
        raise ConfigError(
            source, key_path, f"custom metadata module {spec!r} does not define {FUNCTION_NAME}(info, audio)"
        )
    return fn


class CustomMetadataHook:
    """A picklable handle on a ``custom_metadata_module``: imported on first use in each process."""

    def __init__(self, spec: str, source: str = "", key_path: str = "custom_metadata_module", eager: bool = True):
        self.spec = spec
        self.source = source
        self.key_path = key_path
        self._fn: MetadataFn | None = None
        if eager:
            self._fn = load_custom_metadata_fn(spec, source, key_path)

    @property
    def fn(self) -> MetadataFn:
        if self._fn is None:
            self._fn = load_custom_metadata_fn(self.spec, self.source, self.key_path)
        return self._fn

    def __call__(self, info: dict, audio: Any) -> dict:
        result = self.fn(info, audio)
        if result is None:
            return {}
        if not isinstance(result, dict):
            raise TypeError(f"{self.spec}.{FUNCTION_NAME} returned {type(result).__name__}, expected a dict")
        return result

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fn"] = None
        return state

    def __repr__(self) -> str:
        return f"CustomMetadataHook({self.spec!r})"


def hooks_for_sources(sources: Sequence[Any], source: str = "") -> list[CustomMetadataHook | None]:
    """One hook per dataset source (``None`` where it names no module), in source order.

    Every dataset kind builds its hooks the same way so that a bad module fails at construction with
    an error naming ``<key_path>.custom_metadata_module`` of the source that gave it. ``sources`` are
    objects with ``custom_metadata_module`` and ``key_path`` attributes.
    """
    return [
        CustomMetadataHook(s.custom_metadata_module, source, f"{s.key_path}.custom_metadata_module".lstrip("."))
        if s.custom_metadata_module
        else None
        for s in sources
    ]
