"""The one folder scanner: which files under a folder the datasets read and the probe reports.

Why one: the raw-audio report of ``data_preparation`` must list exactly the files a training run will
get. When the probe and the datasets each walked folders their own way (one followed symbolic links,
the other did not), the report could count audio that training never saw, or miss audio it did.

Rules (shared by audio folders, latent folders and shard folders): recursive; hidden files and hidden
folders (``.git``, ``.cache``, macOS ``._x.wav`` forks) are left out; linked folders are followed, each
real folder visited once (a link loop ends); a folder that cannot be listed is logged and skipped;
within a folder, files come in name order before its sub-folders (also in name order), so a dataset's
item order is reproducible across machines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from stable_audio_ops.data.audio_io import is_audio_file

log = logging.getLogger(__name__)


def walk_files(root: str | os.PathLike[str], accept: Callable[[str], bool]) -> list[str]:
    """Paths of the non-hidden files under ``root`` whose name ``accept`` takes, in walk order (see above)."""
    found: list[str] = []
    seen: set[str] = set()

    def on_error(exc: OSError) -> None:
        log.warning("cannot list folder %s: %s", exc.filename, exc.strerror or exc)

    for folder, dirnames, filenames in os.walk(os.fspath(root), followlinks=True, onerror=on_error):
        real = os.path.realpath(folder)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(folder, name) for name in sorted(filenames)
                     if not name.startswith(".") and accept(name))
    return found


def scan_audio_folder(root: str | os.PathLike[str]) -> list[str]:
    """Audio files under ``root`` (by extension, :data:`~stable_audio_ops.data.audio_io.AUDIO_EXTENSIONS`)."""
    return walk_files(root, is_audio_file)


def files_with_suffix(suffix: str, *, case_sensitive: bool = True) -> Callable[[str], bool]:
    """An ``accept`` for :func:`walk_files`: names ending with ``suffix`` (``.tar`` shards, ``.npy`` latents)."""
    if case_sensitive:
        return lambda name: name.endswith(suffix)
    lowered = suffix.lower()
    return lambda name: name.lower().endswith(lowered)
