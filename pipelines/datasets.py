"""Catalog datasets for the artifacts the library writes as files and folders (issue 8: artifacts through the catalog).

Why: a path in ``parameters_*.yml`` that a node writes, reads or deletes is invisible to Kedro, which then
cannot order nodes by it and cannot say where the artifact lives. With these datasets every artifact path is
in ``conf/base/catalog*.yml`` (and ``dvc.yaml``'s outs mirror it); nodes only return data.

Two ways a node hands over an artifact the library can only write to a path:

- **a writer** (:class:`RecordedFolderDataset`, :class:`TrainingRunDataset`, :class:`FolderDataset`): the node returns a callable that takes
  the destination folder; the dataset calls it with its own location when it saves (the "lazy saving" idiom
  of Kedro's ``PartitionedDataset``). Used where the artifact is large (latents) or written by another process
  into a folder that must stay put (a training run: checkpoints land where ``--ckpt-path last`` resumes).
- **a staged file** (:class:`UnwrappedModelDataset`): the node writes the file under :func:`staged_file` (a
  fresh temporary folder) and returns its record; the dataset moves the file into place. Used where the step
  also returns something else (unwrapping returns the model record and the loss metrics).

Kedro-specific, so it lives in ``pipelines/`` and never in ``stable_audio_ops``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from stable_audio_ops.utils.io import replace_folder, temp_path_for, write_json_atomic

# a step that writes its artifact into the folder it is given, and returns what it reports
WriteInto = Callable[[Path], Any]

STAGING_PREFIX = "kedro-staged-"


def _callable(data: Any, dataset: AbstractDataset) -> WriteInto:
    if not callable(data):
        raise DatasetError(f"{dataset} saves a writer (a callable taking the destination folder), "
                           f"got {type(data).__name__}")
    return data


def staged_file(name: str) -> Path:
    """A path named ``name`` in a new temporary folder, for a node to write a file an
    :class:`UnwrappedModelDataset` then moves into place (the folder is removed when it is empty)."""
    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX)) / name


class FolderDataset(AbstractDataset[WriteInto, Path]):
    """A folder one step writes as a whole (e.g. pre-encoded latents).

    ``save(write)`` calls ``write(tmp)`` on a fresh folder beside ``path`` and then swaps it in
    (:func:`~stable_audio_ops.utils.io.replace_folder`): no file of an older run survives, and a failed run
    leaves the previous folder as it was. ``load()`` returns the folder's path, for the steps that read it.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Path:
        if not self._path.is_dir():
            raise DatasetError(f"{self._path}: no such folder (run the step that writes it first)")
        return self._path

    def save(self, data: WriteInto) -> None:
        write = _callable(data, self)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(self._path)
        try:
            tmp.mkdir()
            write(tmp)
            replace_folder(tmp, self._path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class _RecordedArtifact(AbstractDataset[Any, dict[str, Any]]):
    """An artifact beside a JSON record of it (``filepath``): loading returns the record, which is what later
    steps read (paths, sizes, run ids), so a step that only needs to know where the artifact is loads no weights.
    ``save_args`` are ``json.dumps`` options of the record (default ``indent=2``)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None,
                 save_args: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata
        self._save_args = dict(save_args) if save_args is not None else {"indent": 2}

    def load(self) -> dict[str, Any]:
        return json.loads(self._filepath.read_text(encoding="utf-8"))

    def _write_record(self, record: Mapping[str, Any]) -> None:
        write_json_atomic(self._filepath, dict(record), **self._save_args)


class RecordedFolderDataset(_RecordedArtifact):
    """A folder one step writes in place (``folder``) and its record (``filepath``, JSON).

    ``save(write)`` calls ``write(folder)`` and writes the record it returns; ``load()`` returns the record.
    In place, unlike :class:`FolderDataset`, because what the step writes names the folder's final paths
    (a split's dataset configs, a shard config) or must stay put between runs (demo notes re-render only what
    changed; a training run resumes from ``<run_dir>/checkpoints/last.ckpt``). A step with nothing to write
    (a disabled option) returns its record without touching the folder.
    """

    def __init__(self, filepath: str, folder: str, metadata: dict[str, Any] | None = None,
                 save_args: dict[str, Any] | None = None) -> None:
        super().__init__(filepath, metadata, save_args)
        self._folder = Path(folder)

    def save(self, data: WriteInto) -> None:
        self._write_record(_callable(data, self)(self._folder))

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "folder": str(self._folder)}


class TrainingRunDataset(RecordedFolderDataset):
    """A training run: its folder ``run_dir`` (checkpoints, the configs that trained) and its record ``filepath``
    (JSON: ``checkpoint_path``, ``save_dir``, ``mlflow_run_id``, ``max_steps``).

    ``save(train)`` calls ``train(run_dir)`` (training writes in place, so an interrupted run can be resumed
    from ``<run_dir>/checkpoints/last.ckpt``) and writes the record it returns; ``load()`` returns the record.
    """

    def __init__(self, filepath: str, run_dir: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath, run_dir, metadata)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "run_dir": str(self._folder)}


class UnwrappedModelDataset(_RecordedArtifact):
    """An unwrapped model: a safetensors file with its model config embedded (``model_filepath``) and its
    record (``filepath``, JSON: ``path``, ``size_bytes``, ``trained_from``, ``mlflow_run_id``, ``model_type``, ...).

    ``save(record)`` moves the file ``record["path"]`` names (written under :func:`staged_file`) onto
    ``model_filepath`` atomically, and writes the record with ``path`` and ``size_bytes`` of the file in place.
    ``load()`` returns the record; steps that need the network load ``record["path"]`` with ``load_model``.
    A record whose ``path`` is None (an optional artifact the step did not make) is written alone.
    """

    def __init__(self, filepath: str, model_filepath: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath, metadata)
        self._model_filepath = Path(model_filepath)

    def save(self, data: Mapping[str, Any]) -> None:
        if data.get("path") is None:  # nothing to place (a full fine-tune has no adapter): no stale file stays
            self._model_filepath.unlink(missing_ok=True)
            self._write_record(dict(data))
            return
        source, target = Path(data["path"]), self._model_filepath
        if source.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_path_for(target)
            try:
                shutil.move(source, tmp)  # a copy when the staging folder is on another file system
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            if source.parent.name.startswith(STAGING_PREFIX) and not any(source.parent.iterdir()):
                source.parent.rmdir()
        self._write_record({**data, "path": str(target), "size_bytes": target.stat().st_size})

    def _exists(self) -> bool:
        return self._filepath.is_file() and self._model_filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "model_filepath": str(self._model_filepath)}


__all__ = ["FolderDataset", "RecordedFolderDataset", "TrainingRunDataset", "UnwrappedModelDataset", "WriteInto", "staged_file"]
