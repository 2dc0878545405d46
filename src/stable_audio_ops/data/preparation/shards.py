"""Write a prepared dataset as WebDataset shards and upload them to S3: the same run scales from a folder to a bucket.

:func:`write_webdataset_shards` packs audio files (a folder, or the readable rows of a data-preparation
manifest) into ``.tar`` shards of ``<key>.<flac|wav|...>`` + ``<key>.json`` -- the layout the ``wds``/``s3``
dataset type reads. The json holds the file's sidecar metadata (``<audio stem>.json`` next to it: the demo
set's caption becomes ``prompt``) plus ``relpath``, ``sample_rate``, ``channels`` and ``duration``.
Shards are byte-for-byte reproducible (sorted input, fixed tar headers), so DVC sees no change when
nothing changed, and each shard appears atomically (temp file + rename). ``shards.json`` in the output
folder lists them with sample counts.

:func:`upload_folder_to_s3` uploads a folder under an ``s3://bucket/prefix`` with boto3 (same
credentials/endpoint resolution and retry policy as reading, :mod:`stable_audio_ops.data.s3`), and
skips objects that already hold the same bytes (size + MD5 ETag), so re-running a pipeline is cheap.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from stable_audio_ops.data.audio_io import resample, soundfile_path
from stable_audio_ops.data.files import scan_audio_folder, walk_files
from stable_audio_ops.data.s3 import (
    S3NotFoundError,
    S3Settings,
    call_with_retries,
    endpoint_of,
    make_s3_client,
    parse_s3_url,
)
from stable_audio_ops.data.sidecar_metadata import read_sidecar
from stable_audio_ops.errors import DatasetError
from stable_audio_ops.utils.io import write_json_atomic

log = logging.getLogger(__name__)

AUDIO_FORMATS = ("flac", "wav", "copy")
# Extensions the wds reader recognises as audio (upstream's list); other inputs are re-encoded on "copy".
COPYABLE_EXTENSIONS = (".flac", ".wav", ".mp3", ".ogg", ".opus")
SHARD_PATTERN = "shard-{index:06d}.tar"
INDEX_FILE = "shards.json"
_SHARD_RE = re.compile(r"^shard-\d{6}\.tar$")


# ------------------------------------------------------------------------------------------- inputs
def _inputs(source: Any) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """(path, relpath) pairs to pack, plus skipped rows, from a folder, a manifest list or a manifest .jsonl."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            return [(p, os.path.relpath(p, path)) for p in scan_audio_folder(path)], []
        if os.path.isfile(path) and path.endswith((".jsonl", ".json")):
            with open(path, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            return _inputs(rows)
        raise DatasetError(f"shard source not found (expected a folder or a manifest .jsonl): {path}")
    rows = list(source)
    keep, skipped = [], []
    for row in rows:
        if not isinstance(row, dict) or "path" not in row:
            raise DatasetError(f"manifest rows must be objects with a 'path', got {row!r}")
        if row.get("readable", True):
            keep.append((str(row["path"]), str(row.get("relpath") or os.path.basename(row["path"]))))
        else:
            skipped.append({"path": str(row["path"]), "reason": str(row.get("reason") or "unreadable in manifest")})
    return sorted(keep), skipped


def sample_key(index: int, relpath: str) -> str:
    """A WebDataset key: unique, and without dots (webdataset splits name from extension at the first dot)."""
    stem = os.path.splitext(relpath)[0]
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:80]
    return f"{index:07d}_{safe}" if safe else f"{index:07d}"


def _encode(path: str, audio_format: str, sample_rate: int | None) -> tuple[bytes, str, dict[str, Any]]:
    """(encoded bytes, extension, facts) for one file; raises on unreadable audio."""
    info = sf.info(soundfile_path(path))
    if info.frames <= 0:
        raise ValueError("no audio frames")
    ext = os.path.splitext(path)[1].lower()
    out_sr = sample_rate or int(info.samplerate)
    facts = {"channels": int(info.channels), "sample_rate": out_sr}
    if audio_format == "copy" and ext in COPYABLE_EXTENSIONS and out_sr == info.samplerate:
        with open(path, "rb") as f:
            data = f.read()
        facts["duration"] = info.frames / info.samplerate
        return data, ext.lstrip("."), facts
    audio, in_sr = sf.read(soundfile_path(path), dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(audio.T)
    if out_sr != in_sr:
        audio = resample(audio, in_sr, out_sr)
    facts["duration"] = audio.shape[-1] / out_sr
    sixteen = info.subtype in ("PCM_16", "PCM_S8", "PCM_U8")
    fmt = "wav" if audio_format == "wav" else "flac"
    subtype = ("PCM_16" if sixteen else "FLOAT") if fmt == "wav" else ("PCM_16" if sixteen else "PCM_24")
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio.T, -1.0, 1.0), out_sr, format=fmt.upper(), subtype=subtype)
    return buf.getvalue(), fmt, facts


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # fixed headers: identical input gives identical shards (stable DVC hashes)
    info.mode = 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


class _ShardSink:
    """Writes numbered shards atomically, rolling over on sample count or size."""

    def __init__(self, output_dir: Path, samples_per_shard: int, max_shard_bytes: int | None):
        self.output_dir = output_dir
        self.samples_per_shard = samples_per_shard
        self.max_shard_bytes = max_shard_bytes
        self.written: list[dict[str, Any]] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp = ""
        self._count = 0
        self._bytes = 0

    def add(self, key: str, entries: list[tuple[str, bytes]]) -> None:
        size = sum(len(d) + 1024 for _, d in entries)
        if self._tar is not None and (
            self._count >= self.samples_per_shard
            or (self.max_shard_bytes and self._count and self._bytes + size > self.max_shard_bytes)
        ):
            self.close()
        if self._tar is None:
            fd, self._tmp = tempfile.mkstemp(dir=self.output_dir, prefix=".shard-", suffix=".tmp")
            os.close(fd)
            self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
            self._count = self._bytes = 0
        for ext, data in entries:
            _add(self._tar, f"{key}.{ext}", data)
        self._count += 1
        self._bytes += size

    def close(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        name = SHARD_PATTERN.format(index=len(self.written))
        os.replace(self._tmp, self.output_dir / name)
        self.written.append(
            {"name": name, "samples": self._count, "bytes": (self.output_dir / name).stat().st_size}
        )
        self._tar = None

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)


def write_webdataset_shards(
    manifest_or_folder: str | os.PathLike[str] | Iterable[dict[str, Any]],
    output_dir: str | os.PathLike[str],
    samples_per_shard: int = 256,
    *,
    audio_format: str = "flac",
    sample_rate: int | None = None,
    max_shard_bytes: int | None = None,
    metadata_fn: Callable[[str], dict[str, Any]] | None = read_sidecar,
) -> dict[str, Any]:
    """Pack audio files into WebDataset shards ``output_dir/shard-000000.tar, ...``; returns a summary.

    ``manifest_or_folder``: a folder (scanned recursively), a manifest list (rows with ``path``,
    ``relpath``, ``readable``; unreadable rows are skipped) or a manifest ``.jsonl``. ``audio_format``:
    ``flac`` (lossless; 16-bit sources stay 16-bit, others 24-bit), ``wav`` (16-bit or float) or ``copy``
    (original bytes when the format is one the reader knows). ``sample_rate`` resamples when given.
    ``metadata_fn(audio_path) -> dict`` supplies each json (default: the sidecar file, ``caption`` ->
    ``prompt``). Files that cannot be read are skipped and listed. Shards left over from a previous,
    larger run are removed. Raises :class:`DatasetError` when nothing could be packed.

    Summary keys: ``output_dir``, ``shards`` ([{name, samples, bytes}]), ``samples``, ``skipped``
    ([{path, reason}]), ``index`` (path of ``shards.json``).
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {', '.join(AUDIO_FORMATS)}, got {audio_format!r}")
    if samples_per_shard <= 0:
        raise ValueError(f"samples_per_shard must be positive, got {samples_per_shard}")
    inputs, skipped = _inputs(manifest_or_folder)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    sink = _ShardSink(out, samples_per_shard, max_shard_bytes)
    packed = 0
    try:
        for path, relpath in inputs:
            try:
                data, ext, facts = _encode(path, audio_format, sample_rate)
                meta = dict(metadata_fn(path) if metadata_fn else {})
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("not sharding %s: %s", path, reason)
                skipped.append({"path": path, "reason": reason})
                continue
            meta.setdefault("relpath", relpath.replace(os.sep, "/"))
            for name, value in facts.items():
                meta.setdefault(name, value)
            payload = json.dumps(meta, sort_keys=True, default=str).encode("utf-8")
            sink.add(sample_key(packed, relpath), [(ext, data), ("json", payload)])
            packed += 1
        sink.close()
    except BaseException:
        sink.abort()
        raise
    if packed == 0:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5]) or "no audio files found"
        raise DatasetError(f"no audio could be packed into shards from {manifest_or_folder!s}: {reasons}")
    keep = {s["name"] for s in sink.written}
    for stale in out.iterdir():
        if _SHARD_RE.match(stale.name) and stale.name not in keep:
            stale.unlink()
    index = out / INDEX_FILE
    summary = {
        "output_dir": str(out),
        "shards": sink.written,
        "samples": packed,
        "skipped": skipped,
        "audio_format": audio_format,
        "index": str(index),
    }
    write_json_atomic(index, {k: v for k, v in summary.items() if k not in ("index", "output_dir")},
                      indent=2, sort_keys=True)
    log.info("wrote %d samples into %d shards in %s (%d skipped)", packed, len(sink.written), out, len(skipped))
    return summary


# ------------------------------------------------------------------------------------------ upload
def _md5_hex(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upload_folder_to_s3(
    local_dir: str | os.PathLike[str],
    s3_url: str,
    *,
    settings: S3Settings | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    create_bucket: bool = False,
    suffixes: tuple[str, ...] | None = None,
    skip_unchanged: bool = True,
) -> dict[str, Any]:
    """Upload every (non-hidden) file under ``local_dir`` to ``s3_url`` keeping relative paths; returns a summary.

    ``s3_url`` names a folder (``s3://bucket/prefix``). Credentials, profile and endpoint resolve like
    reading does (keywords override ``settings``). A missing bucket raises :class:`S3NotFoundError`
    naming it and the endpoint unless ``create_bucket``. Transient failures are retried per file.
    ``suffixes`` limits the upload (e.g. ``(".tar", ".json")``). Objects with the same size and MD5 are
    skipped when ``skip_unchanged``. Summary: ``uploaded`` / ``unchanged`` (s3 URLs), ``bytes``, ``s3_url``.
    """
    base = settings or S3Settings()
    settings = S3Settings(
        endpoint_url=endpoint_url or base.endpoint_url,
        profile=profile or base.profile,
        region=region or base.region,
        connect_timeout=base.connect_timeout,
        read_timeout=base.read_timeout,
        retry=base.retry,
    )
    root = Path(local_dir)
    if not root.is_dir():
        raise DatasetError(f"upload source folder not found: {root}")
    bucket, key = parse_s3_url(s3_url)
    prefix = key.strip("/")
    client = make_s3_client(settings)
    try:
        call_with_retries(lambda: client.head_bucket(Bucket=bucket), f"checking bucket {bucket!r}", settings)
    except S3NotFoundError:
        if not create_bucket:
            raise S3NotFoundError(
                f"S3 bucket {bucket!r} does not exist (upload of {root} to {s3_url}, "
                f"endpoint {endpoint_of(settings)}); create it or pass create_bucket=True"
            ) from None
        call_with_retries(lambda: client.create_bucket(Bucket=bucket), f"creating bucket {bucket!r}", settings)

    wanted = tuple(suffixes) if suffixes is not None else ("",)  # "" accepts every name
    files = sorted(Path(p) for p in walk_files(root, lambda name: name.endswith(wanted)))
    uploaded, unchanged, total = [], [], 0
    for path in files:
        rel = path.relative_to(root).as_posix()
        object_key = f"{prefix}/{rel}" if prefix else rel
        url = f"s3://{bucket}/{object_key}"
        size = path.stat().st_size
        if skip_unchanged and _same_object(client, bucket, object_key, path, size, settings):
            unchanged.append(url)
            continue

        def put(path: Path = path, object_key: str = object_key) -> None:
            with open(path, "rb") as body:
                client.put_object(Bucket=bucket, Key=object_key, Body=body)

        call_with_retries(put, f"uploading {path} to {url}", settings)
        uploaded.append(url)
        total += size
    log.info("uploaded %d files (%d bytes) to %s, %d unchanged", len(uploaded), total, s3_url, len(unchanged))
    return {"s3_url": s3_url, "uploaded": uploaded, "unchanged": unchanged, "bytes": total}


def _same_object(client: Any, bucket: str, key: str, path: Path, size: int, settings: S3Settings) -> bool:
    try:
        head = call_with_retries(lambda: client.head_object(Bucket=bucket, Key=key), f"checking s3://{bucket}/{key}",
                                 settings)
    except S3NotFoundError:
        return False
    if int(head.get("ContentLength", -1)) != size:
        return False
    return str(head.get("ETag", "")).strip('"') == _md5_hex(path)
