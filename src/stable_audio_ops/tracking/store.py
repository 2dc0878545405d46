"""Which MLflow store a command talks to, and a clear error when a registry lookup would hit an empty one.

Why: MLflow's own default store is ``./mlruns`` (or a ``./mlflow.db`` beside the caller), not the project's
``mlflow/mlflow.db`` that training, the pipelines and the registry write. A command that looked up
``models:/NAME@champion`` there created a stray empty database and then reported "not found". The commands
use :func:`command_tracking_uri` (the flag, else ``MLFLOW_TRACKING_URI``, else the project's store, as
``train.py`` does), and :func:`check_sqlite_store` refuses to open a SQLite store file that does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path

from stable_audio_ops.errors import ConfigError

PROJECT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"  # relative to the working directory, like train.py's default
SQLITE_PREFIX = "sqlite:///"


def command_tracking_uri(flag: str | None) -> str:
    """The store a command uses: ``flag`` when given, else ``$MLFLOW_TRACKING_URI``, else the project's."""
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or PROJECT_TRACKING_URI


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative or absolute), None for any other store."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    return Path(uri[len(SQLITE_PREFIX):].split("?", 1)[0])


def check_sqlite_store(uri: str, what: str) -> None:
    """Raise a :class:`ConfigError` when ``uri`` is a SQLite store whose file does not exist: opening it would
    create an empty database and every registry lookup of ``what`` would fail as "not found"."""
    path = sqlite_path(uri)
    if path is not None and str(path) != ":memory:" and not path.exists():
        raise ConfigError(what, "tracking_uri",
                          f"no MLflow store at {path} (resolved from {uri!r} in {Path.cwd()}): run from the project "
                          "root, or pass --tracking-uri / set MLFLOW_TRACKING_URI to the store that holds the model")


__all__ = ["PROJECT_TRACKING_URI", "check_sqlite_store", "command_tracking_uri", "sqlite_path"]
