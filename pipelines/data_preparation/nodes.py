"""Nodes of data_preparation. Each calls one library function; the logic lives in stable_audio_ops, the settings
in ``conf/base/parameters_data_preparation.yml`` (nodes hold no defaults)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.data_preparation import plots
from pipelines.datasets import WriteInto
from pipelines.parameters import Parameters
from stable_audio_ops.data.preparation.demo_notes import render_demo_notes
from stable_audio_ops.data.preparation.probe import build_manifest, format_report, summarize_manifest
from stable_audio_ops.data.preparation.split import (
    TEST,
    TRAIN,
    materialize_split,
    plan_split,
    split_dataset_config,
    split_manifest_rows,
)
from stable_audio_ops.data.preparation.training_shards import shard_training_set
from stable_audio_ops.errors import ConfigError

log = logging.getLogger(__name__)

# the settings whose output folder moved from the parameters to the catalog: section -> catalog entry
FOLDER_DATASETS = {"demo": "demo_dataset_summary", "split": "dataset_split", "shards": "dataset_shards_summary"}


def _settings(params: Mapping[str, Any], section: str) -> Parameters:
    """``data_preparation.<section>``; an ``output_dir`` left there (an older conf/local override) is an error
    saying where the folder is set now, rather than a path that is silently ignored."""
    settings = Parameters(params, "data_preparation").sub(section)
    if "output_dir" in settings:
        raise ConfigError(settings.source, f"{settings.section}.output_dir",
                          f"no longer a parameter: the folder is the catalog's ({FOLDER_DATASETS[section]}.folder "
                          "in conf/base/catalog.yml; override it in conf/local/catalog.yml)")
    return settings


def render_demo_dataset(params: Mapping[str, Any]) -> WriteInto:
    """A writer that renders the captioned FluidSynth notes into the catalog's folder (``demo_dataset_summary``)
    when the parameters ask for it (instant when up to date) and returns the summary.

    The options other than ``enabled`` are passed to ``render_demo_notes`` as they are; a null one means "the
    renderer's own choice" (e.g. ``soundfont: null`` = the system's FluidR3_GM). Disabled, the writer touches
    nothing. The parameters are read now, so a missing key fails before any work.
    """
    demo = _settings(params, "demo")
    if not demo["enabled"]:
        return lambda folder: {"enabled": False}
    options = {k: v for k, v in demo.data.items() if k != "enabled" and v is not None}
    if "velocities" in options:
        options["velocities"] = tuple(options["velocities"])
    return lambda folder: {"enabled": True, **render_demo_notes(folder, **options)}


def scan_raw_audio(
    demo_summary: dict[str, Any], params: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any], str, dict[str, Any]]:
    """Probe every raw audio file; the demo summary is an input only to order this after rendering."""
    del demo_summary
    manifest = build_manifest(Parameters(params, "data_preparation")["raw_dirs"])
    summary = summarize_manifest(manifest)
    report = format_report(summary, figure=plots.REPORT_FIGURE)
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


def plot_data_histograms(manifest: list[dict[str, Any]]):
    """Duration, sample-rate and loudness histograms of the readable files, embedded in data_report.md."""
    return plots.data_histograms(manifest)


def split_dataset(manifest: list[dict[str, Any]], params: Mapping[str, Any]) -> WriteInto:
    """Plan the train/test split of the readable files (demo rule or seeded by file); returns a writer that copies
    them into the catalog's folder (``dataset_split``) and returns the split manifest."""
    p = Parameters(params, "data_preparation")
    split = _settings(params, "split")
    plan = plan_split(manifest, p["raw_dirs"], method=str(split["method"]),
                      test_fraction=float(split["test_fraction"]), seed=int(split["seed"]),
                      every_nth_pitch=int(split["every_nth_pitch"]))

    def write(folder: Path) -> dict[str, Any]:
        result = materialize_split(plan, folder)
        log.info("data_preparation: split %s: %d train, %d test clips in %s", result["method"],
                 result["counts"][TRAIN], result["counts"][TEST], result["output_dir"])
        return result

    return write


def write_dataset_config(
    dataset_split: dict[str, Any], params: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``audio_dir`` dataset configs (stable-audio-tools schema) of the train split (what trains) and the test split."""
    dataset = Parameters(params, "data_preparation")["dataset"]
    return split_dataset_config(dataset_split, TRAIN, dataset), split_dataset_config(dataset_split, TEST, dataset)


def shard_dataset(dataset_split: dict[str, Any], params: Mapping[str, Any]) -> WriteInto:
    """A writer that optionally packs the train split's files into WebDataset shards in the catalog's folder
    (``dataset_shards_summary``), uploads them to S3, and returns the report with the ``wds`` or ``s3`` dataset
    config of :func:`shard_training_set` under ``dataset_config``.

    Disabled (the default) or a parameters file without a ``shards`` block (older projects): the writer
    touches nothing and returns ``{"enabled": False}``.
    """
    p = Parameters(params, "data_preparation")
    if "shards" not in p or not p["shards.enabled"]:
        return lambda folder: {"enabled": False}
    shards = _settings(params, "shards")
    rows = split_manifest_rows(dataset_split, TRAIN)
    options = {"dataset_id": p["dataset.id"], "random_crop": p["dataset.random_crop"],
               "samples_per_shard": shards["samples_per_shard"], "audio_format": shards["audio_format"],
               "s3_url": shards["s3_url"], "endpoint_url": shards["endpoint_url"], "profile": shards["profile"],
               "create_bucket": shards["create_bucket"], "epoch_steps": shards["epoch_steps"]}

    def write(folder: Path) -> dict[str, Any]:
        config, report = shard_training_set(rows, folder, **options)
        return {**report, "dataset_config": config}

    return write


def select_training_dataset_config(dataset_config: dict[str, Any], shards: dict[str, Any]) -> dict[str, Any]:
    """What trains: the shards' dataset config when shards were packed, else the train split's ``audio_dir`` one."""
    return shards["dataset_config"] if shards["enabled"] else dataset_config
