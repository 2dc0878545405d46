"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.

One implementation for the whole package: the data is written to a temp file in the target's folder
(``.<name>.<pid>.<random>.tmp``, created exclusively so two writers never share one, with the normal umask
permissions, unlike ``tempfile.mkstemp``'s 0600), which is then ``os.replace``-d onto the target. On any
error, KeyboardInterrupt included, the temp file is removed and the target is left as it was.

- :func:`atomic_write` hands an open binary file to a callback (``np.save``, ``torch.save``, text, JSON);
- :func:`atomic_path` yields the temp *path* for writers that want a file name (soundfile, safetensors);
- :func:`write_bytes_atomic`, :func:`write_text_atomic`, :func:`write_json_atomic` cover the common cases;
- :func:`replace_folder` does the same for a whole folder built beside its target (rendered notes, splits).

Standard library only, so every layer (data preparation included) can use it without importing torch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PathLike = str | os.PathLike[str]


def temp_path_for(path: PathLike) -> Path:
    """A fresh temp name beside ``path`` (same folder, so the final ``os.replace`` is a rename)."""
    path = Path(path)
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


@contextmanager
def atomic_path(path: PathLike, *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``path``, on any error it is removed."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any], *, fsync: bool = False,
                 make_parents: bool = True) -> Path:
    """Call ``write(f)`` with a binary file open on a temp file, then move it onto ``path``.

    ``fsync`` flushes the data to disk before the rename (checkpoints: a power cut must not leave a
    renamed but empty file).
    """
    with atomic_path(path, make_parents=make_parents) as tmp:
        with open(tmp, "xb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    return Path(path)


def write_bytes_atomic(path: PathLike, data: bytes, **kwargs: Any) -> Path:
    return atomic_write(path, lambda f: f.write(data), **kwargs)


def write_text_atomic(path: PathLike, text: str, encoding: str = "utf-8", **kwargs: Any) -> Path:
    return write_bytes_atomic(path, text.encode(encoding), **kwargs)


def write_json_atomic(path: PathLike, data: Any, **dumps_kwargs: Any) -> Path:
    """``json.dumps(data, **dumps_kwargs)`` written atomically as UTF-8 (e.g. ``indent=2, sort_keys=True``)."""
    return write_text_atomic(path, json.dumps(data, **dumps_kwargs))


def replace_folder(tmp_dir: PathLike, output_dir: PathLike) -> Path:
    """Rename the finished ``tmp_dir`` onto ``output_dir``; an old ``output_dir`` is set aside first and removed
    only after the swap, so a crash leaves the old folder or the new one, never a half-written one."""
    tmp_dir, output_dir = Path(tmp_dir), Path(output_dir)
    old: Path | None = None
    if output_dir.exists():
        old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(output_dir, old)
    os.replace(tmp_dir, output_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return output_dir


__all__ = ["atomic_path", "atomic_write", "replace_folder", "temp_path_for", "write_bytes_atomic",
           "write_json_atomic", "write_text_atomic"]
