"""The train split as WebDataset shards (optionally in S3), and the dataset config that trains on them.

Why here and not in the pipeline: choosing between a local ``wds`` config and an ``s3`` one, and what the
report says about the upload, is data-preparation logic that a script or a test should get with one call;
the Kedro node only passes its parameters.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from stable_audio_ops.data.preparation.shards import upload_folder_to_s3, write_webdataset_shards

log = logging.getLogger(__name__)


def shard_training_set(rows: Iterable[dict[str, Any]], output_dir: str | os.PathLike[str], *, dataset_id: str,
                       random_crop: bool, samples_per_shard: int, audio_format: str, s3_url: str | None,
                       endpoint_url: str | None, profile: str | None, create_bucket: bool,
                       epoch_steps: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pack ``rows`` (manifest rows of the train split) into shards in ``output_dir``; with ``s3_url`` upload them
    there. Returns ``(dataset config, report)``.

    The config is an ``s3`` one (``s3_path``, plus ``endpoint_url`` / ``profile`` when set) after an upload,
    else a local ``wds`` one (``path``); ``epoch_steps`` is set when given. The shard json already holds each
    file's sidecar metadata (caption as ``prompt``), so no metadata module is needed. The report says what was
    packed and uploaded: ``enabled``, ``output_dir``, ``samples``, ``shards``, ``skipped``, ``s3_url``,
    ``uploaded`` / ``unchanged`` (file counts).
    """
    summary = write_webdataset_shards(rows, output_dir, samples_per_shard=int(samples_per_shard),
                                      audio_format=audio_format)
    source: dict[str, Any] = {"id": dataset_id}
    upload: dict[str, Any] | None = None
    if s3_url:
        upload = upload_folder_to_s3(output_dir, s3_url, endpoint_url=endpoint_url, profile=profile,
                                     create_bucket=bool(create_bucket))
        source["s3_path"] = s3_url.rstrip("/") + "/"
        source.update({key: value for key, value in (("endpoint_url", endpoint_url), ("profile", profile)) if value})
    else:
        source["path"] = str(output_dir)
    config: dict[str, Any] = {"dataset_type": "s3" if s3_url else "wds", "datasets": [source],
                              "random_crop": bool(random_crop)}
    if epoch_steps:
        config["epoch_steps"] = int(epoch_steps)
    log.info("data_preparation: %d samples in %d shards%s", summary["samples"], len(summary["shards"]),
             f", uploaded to {s3_url}" if s3_url else "")
    report = {"enabled": True, "output_dir": summary["output_dir"], "samples": summary["samples"],
              "shards": summary["shards"], "skipped": summary["skipped"], "s3_url": s3_url,
              "uploaded": len(upload["uploaded"]) if upload else 0,
              "unchanged": len(upload["unchanged"]) if upload else 0}
    return config, report


__all__ = ["shard_training_set"]
