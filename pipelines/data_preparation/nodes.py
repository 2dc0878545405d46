"""Nodes of data_preparation. Each calls one library function; the logic lives in stable_audio_ops."""

from __future__ import annotations

import logging
from typing import Any

from stable_audio_ops.data.demo_notes import render_demo_notes
from stable_audio_ops.data.probe import build_manifest, format_report, summarize_manifest
from stable_audio_ops.errors import DatasetError

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


def write_dataset_config(data_summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """An `audio_dir` dataset config (stable-audio-tools schema) over the scanned folders."""
    if data_summary["readable"] == 0:
        raise DatasetError(
            f"data_preparation: no readable audio file under {params['raw_dirs']}; "
            "see data/08_reporting/data_report.md for what was skipped and why"
        )
    dataset = params.get("dataset") or {}
    sources = []
    for index, folder in enumerate(params["raw_dirs"]):
        source: dict[str, Any] = {"id": f"{dataset.get('id', 'raw')}_{index}", "path": str(folder)}
        if dataset.get("custom_metadata_module"):
            source["custom_metadata_module"] = dataset["custom_metadata_module"]
        sources.append(source)
    return {
        "dataset_type": "audio_dir",
        "datasets": sources,
        "random_crop": bool(dataset.get("random_crop", True)),
        "drop_last": bool(dataset.get("drop_last", True)),
    }
