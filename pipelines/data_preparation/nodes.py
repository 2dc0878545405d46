"""Nodes of data_preparation. Each calls one library function; the logic lives in stable_audio_ops."""

from __future__ import annotations

import logging
from typing import Any

from stable_audio_ops.data.demo_notes import render_demo_notes
from stable_audio_ops.data.probe import build_manifest, format_report, summarize_manifest
from stable_audio_ops.data.shards import upload_folder_to_s3, write_webdataset_shards
from stable_audio_ops.data.split import (
    TEST,
    TRAIN,
    materialize_split,
    plan_split,
    split_dataset_config,
    split_manifest_rows,
)

log = logging.getLogger(__name__)


def render_demo_dataset(params: dict[str, Any]) -> dict[str, Any]:
    """Render the captioned FluidSynth notes when the parameters ask for it (instant when up to date)."""
    demo = params.get("demo") or {}
    if not demo.get("enabled", False):
        return {"enabled": False}
    options = {k: v for k, v in demo.items() if k not in ("enabled", "output_dir") and v is not None}
    if "velocities" in options:
        options["velocities"] = tuple(options["velocities"])
    summary = render_demo_notes(demo["output_dir"], **options)
    return {"enabled": True, **summary}


def scan_raw_audio(
    demo_summary: dict[str, Any], params: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any], str, dict[str, Any]]:
    """Probe every raw audio file; the demo summary is an input only to order this after rendering."""
    del demo_summary
    manifest = build_manifest(params["raw_dirs"])
    summary = summarize_manifest(manifest)
    report = format_report(summary)
    log.info(
        "data_preparation: %d files, %d readable, %d skipped, %.3f h",
        summary["files"], summary["readable"], summary["skipped"], summary["total_hours"],
    )
    metrics = {
        "files": {"value": float(summary["files"]), "step": 0},
        "readable": {"value": float(summary["readable"]), "step": 0},
        "skipped": {"value": float(summary["skipped"]), "step": 0},
        "total_hours": {"value": float(summary["total_hours"]), "step": 0},
    }
    return manifest, summary, report, metrics


def split_dataset(manifest: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Split the readable files into train/test folders (demo rule or seeded by file); returns the split manifest."""
    split = params.get("split") or {}
    plan = plan_split(manifest, params["raw_dirs"], method=str(split.get("method", "auto")),
                      test_fraction=float(split.get("test_fraction", 0.15)), seed=int(split.get("seed", 0)),
                      every_nth_pitch=int(split.get("every_nth_pitch", 2)))
    result = materialize_split(plan, split.get("output_dir", "data/03_primary/splits"))
    log.info("data_preparation: split %s: %d train, %d test clips in %s", result["method"],
             result["counts"][TRAIN], result["counts"][TEST], result["output_dir"])
    return result


def write_dataset_config(
    dataset_split: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``audio_dir`` dataset configs (stable-audio-tools schema) of the train split (what trains) and the test split."""
    dataset = params.get("dataset") or {}
    return split_dataset_config(dataset_split, TRAIN, dataset), split_dataset_config(dataset_split, TEST, dataset)


def shard_dataset(
    dataset_config: dict[str, Any], dataset_split: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Optionally pack the train split's files into WebDataset shards (and upload them to S3).

    Disabled (the default): the ``audio_dir`` config passes through unchanged. Enabled: shards go to
    ``shards.output_dir``; with ``shards.s3_url`` they are uploaded there and the emitted config is an
    ``s3`` one (``s3_path``, ``endpoint_url``, ``profile``), else a local ``wds`` one. The shard json
    already holds each file's sidecar metadata (caption as ``prompt``), so no metadata module is needed.
    """
    shards = params.get("shards") or {}
    if not shards.get("enabled", False):
        return dataset_config, {"enabled": False}
    summary = write_webdataset_shards(
        split_manifest_rows(dataset_split, TRAIN),
        shards["output_dir"],
        samples_per_shard=int(shards.get("samples_per_shard", 256)),
        audio_format=shards.get("audio_format", "flac"),
    )
    dataset = params.get("dataset") or {}
    source: dict[str, Any] = {"id": dataset.get("id", "raw")}
    upload = None
    s3_url = shards.get("s3_url")
    if s3_url:
        upload = upload_folder_to_s3(
            shards["output_dir"], s3_url, endpoint_url=shards.get("endpoint_url"), profile=shards.get("profile"),
            create_bucket=bool(shards.get("create_bucket", False)),
        )
        source["s3_path"] = s3_url.rstrip("/") + "/"
        for key in ("endpoint_url", "profile"):
            if shards.get(key):
                source[key] = shards[key]
    else:
        source["path"] = str(shards["output_dir"])
    config: dict[str, Any] = {
        "dataset_type": "s3" if s3_url else "wds",
        "datasets": [source],
        "random_crop": bool(dataset.get("random_crop", True)),
    }
    if shards.get("epoch_steps"):
        config["epoch_steps"] = int(shards["epoch_steps"])
    log.info("data_preparation: %d samples in %d shards%s", summary["samples"], len(summary["shards"]),
             f", uploaded to {s3_url}" if s3_url else "")
    report = {
        "enabled": True,
        "output_dir": summary["output_dir"],
        "samples": summary["samples"],
        "shards": summary["shards"],
        "skipped": summary["skipped"],
        "s3_url": s3_url,
        "uploaded": len(upload["uploaded"]) if upload else 0,
        "unchanged": len(upload["unchanged"]) if upload else 0,
    }
    return config, report
