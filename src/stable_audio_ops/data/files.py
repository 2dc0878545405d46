"""The one folder scanner: which files under a folder the datasets read and the probe reports.

Why one: the raw-audio report of ``data_preparation`` must list exactly the files a training run will
get. When the probe and the datasets each walked folders their own way (one followed symbolic links,
the other did not), the report could count audio that training never saw, or miss audio it did.

Rules (shared by audio folders, latent folders and shard folders): recursive; hidden files and hidden
folders (``.git``, ``.cache``, macOS ``._x.wav`` forks) are left out; linked folders are followed, each
real folder visited once (a link loop ends); a folder that cannot be listed is logged and skipped;
within a folder, files come in name order before its sub-folders (also in name order), so a dataset's
item order is reproducible across machines.

The same goes for what makes a listed file usable: :func:`check_audio_file` is the one check, so the probe
and the training scan skip the same files for the same reason (a self-looping link, an empty or truncated
file, a float file holding NaN/Inf samples, a name that is not valid UTF-8 is *not* a reason).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from stable_audio_ops.data.audio_io import AudioInfo, audio_info, is_audio_file, soundfile_path

log = logging.getLogger(__name__)


def printable_path(path: str | os.PathLike[str]) -> str:
    """``path`` as text any UTF-8 writer takes: bytes of a name that are not UTF-8 become ``\\xNN``.

    Why: such a name reaches Python surrogate-escaped (``"caf\\udce9.wav"``); a report, a JSON summary or a log
    line written as UTF-8 raises on it. Reports show ``caf\\xe9.wav``; paths that code reads back (manifest,
    split) keep the original str, which opens the file.
    """
    text = os.fspath(path)
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate that is not a file-system escape (e.g. from JSON)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


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


# Frames decoded at the start and at the end of each file to prove the data (not just the header) is readable.
PROBE_FRAMES = 2048
# Sample formats that can hold NaN or Inf (integer PCM, FLAC and the lossy codecs decode to finite values).
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
# Frames per block when a float file is read through for non-finite samples (bounded memory on long files).
FINITE_CHECK_BLOCK = 1 << 18


@dataclass(frozen=True)
class FileCheck:
    """What :func:`check_audio_file` found: ``reason`` is None for a usable file (then ``info`` is set)."""

    size_bytes: int | None
    info: AudioInfo | None
    reason: str | None

    @property
    def usable(self) -> bool:
        return self.reason is None


def check_audio_file(path: str | os.PathLike[str]) -> FileCheck:
    """Whether ``path`` holds audio a training run can use; never raises for a bad file.

    Reasons (the text before the first ``:`` is the kind the reports count): ``cannot stat`` (missing, a link
    loop), ``empty`` (0 bytes or 0 frames), ``cannot open``, ``bad header``, ``cannot decode`` (the first or
    the last :data:`PROBE_FRAMES` frames fail: a truncated copy breaks only when a crop lands near its end),
    ``non-finite samples`` (a float file holding NaN/Inf: every crop over it would be garbage the silence
    test cannot see, so the whole file is read through; integer formats cannot hold such values).
    """
    try:
        size: int | None = os.stat(path).st_size
    except OSError as exc:
        return FileCheck(None, None, f"cannot stat: {exc.strerror or exc}")
    if size == 0:
        return FileCheck(size, None, "empty")
    try:
        info = audio_info(path)
    except Exception as exc:  # libsndfile raises LibsndfileError / RuntimeError depending on the failure
        return FileCheck(size, None, f"cannot open: {short_error(exc)}")
    if info.frames <= 0:
        return FileCheck(size, info, "empty")
    if info.sample_rate <= 0 or info.channels <= 0:
        return FileCheck(size, info, f"bad header: sample_rate={info.sample_rate}, channels={info.channels}")
    problem = _decode_problem(path, info.frames, info.subtype in FLOAT_SUBTYPES)
    return FileCheck(size, info, problem)


def _decode_problem(path: str | os.PathLike[str], frames: int, may_hold_non_finite: bool) -> str | None:
    """Decode the first and the last few frames (all of them for a float file); the reason when that fails."""
    n = min(PROBE_FRAMES, frames)
    try:
        with sf.SoundFile(soundfile_path(path)) as fh:
            head = fh.read(n, dtype="float32", always_2d=True)
            if head.shape[0] < n:
                return f"cannot decode: only {head.shape[0]} of the first {n} frames could be read"
            if may_hold_non_finite:
                return _non_finite_problem(fh, head, frames)
            if frames > n:
                fh.seek(frames - n)
                tail = fh.read(n, dtype="float32", always_2d=True)
                if tail.shape[0] < n:
                    return f"cannot decode: the file ends early: {tail.shape[0]} of the last {n} frames could be read"
    except Exception as exc:
        return f"cannot decode: {short_error(exc)}"
    return None


def _non_finite_problem(fh: sf.SoundFile, head: np.ndarray, frames: int) -> str | None:
    """Read a float file through after ``head``; the first NaN/Inf frame, or a short read, is the reason."""
    start, block = 0, head
    while True:
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if bad.size:
            return f"non-finite samples: NaN or Inf from frame {start + int(bad[0])}"
        start += block.shape[0]
        if start >= frames:
            return None
        block = fh.read(min(FINITE_CHECK_BLOCK, frames - start), dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            return f"cannot decode: the file ends early: {start} of {frames} frames could be read"


def short_error(exc: BaseException) -> str:
    """libsndfile messages repeat the full path; keep the part that says what is wrong."""
    text = str(exc).strip() or type(exc).__name__
    if ": " in text and text.startswith("Error opening"):
        text = text.rsplit(": ", 1)[-1]
    return text
