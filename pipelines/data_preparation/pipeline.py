"""data_preparation: render demo notes -> scan/probe -> manifest + report -> train/test split -> dataset configs
[-> shards of the train split -> S3]."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.data_preparation.nodes import (
    plot_data_histograms,
    render_demo_dataset,
    scan_raw_audio,
    select_training_dataset_config,
    shard_dataset,
    split_dataset,
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
                plot_data_histograms,
                inputs="audio_manifest",
                outputs="data_histograms",
                name="plot_data_histograms",
            ),
            node(
                split_dataset,
                inputs=["audio_manifest", "params:data_preparation"],
                outputs="dataset_split",
                name="split_dataset",
            ),
            node(
                write_dataset_config,
                inputs=["dataset_split", "params:data_preparation"],
                outputs=["audio_dir_dataset_config", "test_dataset_config"],
                name="write_dataset_config",
            ),
            node(
                shard_dataset,
                inputs=["dataset_split", "params:data_preparation"],
                outputs="dataset_shards_summary",
                name="shard_dataset",
            ),
            node(
                select_training_dataset_config,
                inputs=["audio_dir_dataset_config", "dataset_shards_summary"],
                outputs="prepared_dataset_config",
                name="select_training_dataset_config",
            ),
        ]
    )
