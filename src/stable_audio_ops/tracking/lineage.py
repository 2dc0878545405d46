"""Lineage facts attached to every MLflow run: the git commit, the DVC hash of the data, the DVC stage.

Why: a metric in MLflow is only useful if one can get back to what produced it. The git commit names the
code and configs; the DVC hash names the data exactly as DVC does (the ``md5`` DVC writes into
``dvc.lock`` for a directory, ``<hex>.dir``), so ``git checkout <commit> && dvc checkout`` restores both.
The data hash is computed with dvc-data's own tree builder (honouring ``.dvcignore``), so it is the same
value whether or not the run was started by ``dvc repro``.

Everything here degrades to "unknown" instead of failing: a run outside a git checkout, without DVC or
without the data folder still runs, it just carries fewer tags.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
DEFAULT_DATA_PATHS = ("data/01_raw",)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_facts(root: str | Path = ".") -> dict[str, str]:
    """``git_commit`` (HEAD), ``git_branch`` and ``git_dirty`` ("true" when tracked files changed)."""
    root = Path(root)
    commit = _git(["rev-parse", "HEAD"], root)
    if commit is None:
        return {"git_commit": UNKNOWN}
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], root)
    return {"git_commit": commit, "git_branch": branch or UNKNOWN, "git_dirty": str(bool(status)).lower()}


def dvc_hash(path: str | Path, root: str | Path = ".") -> str | None:
    """The md5 DVC records for ``path`` (a file, or a directory as ``<md5>.dir``); None if it is missing.

    Built with dvc-data into a throw-away object store, so nothing is written to the project's cache.
    ``.dvcignore`` at ``root`` is honoured like DVC does. A folder DVC cannot hash (it raises on a
    self-looping link, which the data probe reports as a skipped file) also gives None: lineage degrades
    to "unknown", the run goes on.
    """
    path = Path(root) / path
    if not path.exists():
        return None
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    ignore = None
    if (Path(root) / ".dvcignore").is_file():
        from dvc.ignore import DvcIgnoreFilter

        ignore = DvcIgnoreFilter(fs, str(Path(root).resolve()))
    with tempfile.TemporaryDirectory(prefix="sao-dvc-hash-") as tmp:
        odb = HashFileDB(fs, tmp)
        try:
            _, _, obj = build(odb, str(path.resolve()), fs, "md5", ignore=ignore, dry_run=True)
        except OSError as exc:
            log.warning("no DVC hash for %s: %s", path, exc)
            return None
    return str(obj.hash_info.value)


def combined_hash(hashes: Mapping[str, str | None]) -> str:
    """One short id for several data paths: sha256 over ``path=hash`` lines (first 16 hex chars)."""
    text = "\n".join(f"{k}={v}" for k, v in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_facts(paths: Iterable[str] = DEFAULT_DATA_PATHS, root: str | Path = ".") -> dict[str, str]:
    """``dvc_data_hash`` for the data paths (the DVC md5 itself for one path), plus one tag per path."""
    hashes = {str(p): dvc_hash(p, root) for p in paths}
    present = {k: v for k, v in hashes.items() if v is not None}
    tags = {f"dvc_hash.{k}": v for k, v in present.items()}
    if not present:
        tags["dvc_data_hash"] = UNKNOWN
    elif len(hashes) == 1:
        tags["dvc_data_hash"] = next(iter(present.values()))
    else:
        tags["dvc_data_hash"] = combined_hash(hashes)
    return tags


def lineage_tags(root: str | Path = ".", data_paths: Iterable[str] = DEFAULT_DATA_PATHS) -> dict[str, str]:
    """All lineage tags for a run started in ``root`` (git + DVC data hash + the DVC stage, if any)."""
    tags = {**git_facts(root), **data_facts(data_paths, root)}
    stage = os.environ.get("DVC_STAGE")
    if stage:
        tags["dvc_stage"] = stage
    return tags


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (weights files are identified by it in the registry)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(state_dict: Mapping[str, object], prefix: str = "") -> str:
    """sha256 over the tensors whose key starts with ``prefix`` (prefix stripped, keys sorted).

    Identifies weights independently of the file they sit in: the autoencoder inside a diffusion
    checkpoint (``pretransform.model.*``) hashes equal to the unwrapped autoencoder it was trained on.
    """
    import torch

    digest = hashlib.sha256()
    for key in sorted(k for k in state_dict if k.startswith(prefix)):
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict_sha256: {key!r} is a {type(tensor).__name__}, not a tensor")
        digest.update(key[len(prefix):].encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
