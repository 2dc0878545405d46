"""data_preparation: render demo notes -> scan/probe -> manifest + report -> dataset config [-> shards -> S3]."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.data_preparation.nodes import (
    render_demo_dataset,
    scan_raw_audio,
    shard_dataset,
    write_dataset_config,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                render_demo_dataset,
                inputs="params:data_preparation",
                outputs="demo_dataset_summary",
                name="render_demo_dataset",
            ),
            node(
                scan_raw_audio,
                inputs=["demo_dataset_summary", "params:data_preparation"],
                outputs=["audio_manifest", "data_summary", "data_report", "data_metrics"],
                name="scan_raw_audio",
            ),
            node(
                write_dataset_config,
                inputs=["data_summary", "params:data_preparation"],
                outputs="audio_dir_dataset_config",
                name="write_dataset_config",
            ),
            node(
                shard_dataset,
                inputs=["audio_dir_dataset_config", "audio_manifest", "params:data_preparation"],
                outputs=["prepared_dataset_config", "dataset_shards_summary"],
                name="shard_dataset",
            ),
        ]
    )
