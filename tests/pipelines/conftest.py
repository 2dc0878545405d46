"""A throw-away copy of the Kedro project (conf + pipelines) so pipeline tests never touch the repo's data/ or mlflow/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from pipelines.datasets import RecordedFolderDataset, TrainingRunDataset, UnwrappedModelDataset

REPO = Path(__file__).resolve().parents[2]
TINY_AE = REPO / "tests" / "fixtures" / "configs" / "autoencoder_tiny.json"


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def kedro_project(tmp_path: Path) -> Path:
    """Project copy with a tiny demo set (2 instruments x 2 notes x 2 velocities) and a tiny autoencoder."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("credentials*"))
    (project / "conf" / "local").mkdir(exist_ok=True)
    os.symlink(REPO / "pipelines", project / "pipelines")
    shutil.copy(TINY_AE, project / "conf" / "base" / "model_configs" / "autoencoder_demo.json")

    def tiny_data(params: dict) -> None:
        demo = params["data_preparation"]["demo"]
        demo.update(instruments=["flute", "church organ"], midi_low=60, midi_high=61, velocities=[40, 120])
        # a second raw folder the user brought, holding one broken file
        params["data_preparation"]["raw_dirs"].append("data/01_raw/extra")

    def tiny_training(params: dict) -> None:
        params["autoencoder"]["train"].update(max_steps=6, batch_size=2, checkpoint_every=3, threads=1)

    _edit_yaml(project / "conf" / "base" / "parameters_data_preparation.yml", tiny_data)
    _edit_yaml(project / "conf" / "base" / "parameters_autoencoder.yml", tiny_training)
    return project


def run_kedro(project: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, DO_NOT_TRACK="true", KEDRO_DISABLE_TELEMETRY="1", MLFLOW_DISABLE_TELEMETRY="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    kedro = Path(sys.executable).parent / "kedro"
    result = subprocess.run(
        [str(kedro), "run", *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"kedro run {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def tiny_latent_diffusion(project: Path) -> None:
    """A one-block DiT with few, short demos, pre-encoding 1024-sample crops, 6 training steps."""
    path = project / "conf" / "base" / "model_configs" / "dit_demo.json"
    config = json.loads(path.read_text())
    config["model"]["diffusion"]["config"].update(embed_dim=64, depth=1, num_heads=1)
    config["training"]["demo"].update(demo_every=100, demo_steps=4, num_demos=2, demo_cfg_scales=[1, 3])
    path.write_text(json.dumps(config))

    def tiny(params: dict) -> None:
        params["latent_diffusion"]["pre_encode"].update(sample_size=1024, batch_size=4)
        params["latent_diffusion"]["train"].update(max_steps=6, batch_size=2, checkpoint_every=3, threads=1)

    _edit_yaml(project / "conf" / "base" / "parameters_latent_diffusion.yml", tiny)


def tiny_evaluation(project: Path) -> None:
    """Evaluation in seconds (as tests/pipelines/test_evaluation.py): the fast embedder and pitch judge, few
    KID subsets, 2 sampling steps. The promotion floors and rules stay the recipe's."""

    def tiny(params: dict) -> None:
        evaluation = params["evaluation"]
        evaluation["split"].update(holdout_fraction=0.5, max_reference_clips=40)
        evaluation["autoencoder"].update(batch_size=4)
        evaluation["generation"].update(num_captions=4, steps=2, batch_size=4)
        evaluation["judges"].update(embedder="mel_stats", pitch_judges=["acf"], kid_subsets=10, kid_subset_size=50)
        evaluation["plots"].update(spectrogram_examples=2)

    _edit_yaml(project / "conf" / "base" / "parameters_evaluation.yml", tiny)


class KeptDataset(MemoryDataset):
    """A memory dataset the runner does not empty after its last reader, so a test can read every
    intermediate output (the runner releases data no later node needs)."""

    def _release(self) -> None:
        pass


def run_pipeline(pipeline: Pipeline, inputs: Mapping[str, Any],
                 datasets: Mapping[str, AbstractDataset] | None = None) -> dict[str, Any]:
    """Run ``pipeline`` with Kedro's SequentialRunner over a DataCatalog holding ``inputs`` (dataset name ->
    data, ``params:...`` included) and ``datasets`` (the file datasets of ``pipelines.datasets``, at test
    paths); every other dataset is in memory. Returns every dataset's data after the run."""
    datasets = dict(datasets or {})
    names = pipeline.datasets() | set(inputs) | set(datasets)
    catalog = DataCatalog({name: datasets.get(name) or (KeptDataset(inputs[name], copy_mode="assign")
                                                        if name in inputs else KeptDataset(copy_mode="assign"))
                           for name in names})
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in names}


def data_preparation_datasets(root: Path, *, raw: Path | None = None) -> dict[str, AbstractDataset]:
    """data_preparation's folder datasets (as in conf/base/catalog.yml) under ``root``: the demo notes render into
    ``raw`` (default ``root / "raw"``), the split into ``root / "splits"``, the shards into ``root / "shards"``."""
    return {"demo_dataset_summary": RecordedFolderDataset(str(root / "demo_notes_summary.json"),
                                                          folder=str(raw or root / "raw")),
            "dataset_split": RecordedFolderDataset(str(root / "split.json"), folder=str(root / "splits")),
            "dataset_shards_summary": RecordedFolderDataset(str(root / "dataset_shards.json"),
                                                            folder=str(root / "shards"))}


def autoencoder_datasets(root: Path) -> dict[str, AbstractDataset]:
    """The autoencoder pipeline's file datasets (as in conf/base/catalog.yml) under ``root``."""
    return {"autoencoder_training_result": TrainingRunDataset(str(root / "autoencoder_training.json"),
                                                              run_dir=str(root / "autoencoder")),
            "autoencoder_model": UnwrappedModelDataset(str(root / "autoencoder_model.json"),
                                                       model_filepath=str(root / "autoencoder.safetensors"))}


@pytest.fixture(scope="session")
def autoencoder_run(tmp_path_factory) -> dict[str, Any]:
    """data_preparation then autoencoder, each by Kedro's SequentialRunner over a DataCatalog, on the tiny
    demo (2 instruments x 2 notes x 2 velocities) and the tiny autoencoder (6 steps), without MLflow; returns
    every dataset of both runs plus the folder they wrote into. Shared by the autoencoder and latent
    diffusion pipeline tests so the autoencoder trains once."""
    from pipelines.autoencoder.pipeline import create_pipeline as autoencoder_pipeline
    from pipelines.data_preparation.pipeline import create_pipeline as data_preparation_pipeline

    root = tmp_path_factory.mktemp("runner")
    conf = REPO / "conf" / "base"
    prep = yaml.safe_load((conf / "parameters_data_preparation.yml").read_text())["data_preparation"]
    prep.update(raw_dirs=[str(root / "raw" / "audio")])
    prep["demo"].update(instruments=["flute", "church organ"], midi_low=60, midi_high=61, velocities=[40, 120])
    prepared = run_pipeline(data_preparation_pipeline(), {"params:data_preparation": prep},
                            datasets=data_preparation_datasets(root))

    autoencoder = yaml.safe_load((conf / "parameters_autoencoder.yml").read_text())["autoencoder"]
    autoencoder["train"].update(max_steps=6, batch_size=2, checkpoint_every=3, threads=1)
    trained = run_pipeline(autoencoder_pipeline(), {
        "autoencoder_model_config": json.loads(TINY_AE.read_text()),
        "prepared_dataset_config": prepared["prepared_dataset_config"], "params:autoencoder": autoencoder},
        datasets=autoencoder_datasets(root))
    return {**prepared, **trained, "root": root}
