"""The catalog datasets of pipelines/datasets.py, through a DataCatalog as the runner uses them: artifacts land
at the catalog's paths, a failed step leaves the previous artifact, and what loads is what later nodes read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.io import DataCatalog, DatasetError

from pipelines.datasets import FolderDataset, TrainingRunDataset, UnwrappedModelDataset, staged_file
from tests.pipelines.conftest import REPO


def catalog_entry(name: str, entry: dict, tmp_path: Path) -> DataCatalog:
    """A catalog built from config as ``conf/base/catalog*.yml`` declares it (the paths moved under tmp_path)."""
    moved = {key: str(tmp_path / value) if key.endswith(("path", "run_dir", "folder")) else value
             for key, value in entry.items()}
    return DataCatalog.from_config({name: moved})


def test_the_shipped_catalog_declares_every_artifact_with_these_datasets() -> None:
    import yaml

    entries = {}
    for path in sorted((REPO / "conf" / "base").glob("catalog*.yml")):
        entries.update(yaml.safe_load(path.read_text()))
    latents = entries["latents"]
    assert (latents["type"], latents["path"]) == ("pipelines.datasets.FolderDataset", "data/04_feature/latents")
    for model in ("autoencoder", "latent_diffusion"):
        assert entries[f"{model}_training_result"]["run_dir"] == f"data/06_models/{model}"
        assert entries[f"{model}_model"]["model_filepath"] == f"data/06_models/{model}.safetensors"
    # data_preparation's folders, where they were when they were parameters (existing data stays put)
    folders = {name: (entries[name]["type"], entries[name]["folder"])
               for name in ("demo_dataset_summary", "dataset_split", "dataset_shards_summary")}
    assert folders == {"demo_dataset_summary": ("pipelines.datasets.RecordedFolderDataset", "data/01_raw/demo_notes"),
                       "dataset_split": ("pipelines.datasets.RecordedFolderDataset", "data/03_primary/splits"),
                       "dataset_shards_summary": ("pipelines.datasets.RecordedFolderDataset",
                                                  "data/03_primary/shards")}


def test_folder_dataset_swaps_in_a_whole_new_folder_and_keeps_the_old_one_on_failure(tmp_path: Path) -> None:
    catalog = catalog_entry("latents", {"type": "pipelines.datasets.FolderDataset", "path": "latents"}, tmp_path)
    assert not catalog.exists("latents")
    catalog.save("latents", lambda folder: (folder / "a.npy").write_text("first"))
    catalog.save("latents", lambda folder: (folder / "b.npy").write_text("second"))
    folder = catalog.load("latents")
    assert folder == tmp_path / "latents" and sorted(p.name for p in folder.iterdir()) == ["b.npy"]

    def fail(folder: Path) -> None:
        (folder / "c.npy").write_text("half")
        raise RuntimeError("encoder broke")

    with pytest.raises(DatasetError, match="encoder broke"):
        catalog.save("latents", fail)
    assert sorted(p.name for p in folder.iterdir()) == ["b.npy"]
    assert [p.name for p in tmp_path.iterdir()] == ["latents"]  # no temp folder left behind
    with pytest.raises(DatasetError, match="writer"):
        FolderDataset(str(tmp_path / "x")).save({"not": "a writer"})


def test_training_run_dataset_trains_into_its_folder_and_keeps_the_record(tmp_path: Path) -> None:
    entry = {"type": "pipelines.datasets.TrainingRunDataset", "filepath": "run.json", "run_dir": "run"}
    catalog = catalog_entry("training_result", entry, tmp_path)

    def train(run_dir: Path) -> dict:
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.ckpt").write_text("weights")
        return {"checkpoint_path": str(run_dir / "checkpoints" / "last.ckpt"), "mlflow_run_id": None}

    catalog.save("training_result", train)
    record = catalog.load("training_result")
    assert record == json.loads((tmp_path / "run.json").read_text())
    assert Path(record["checkpoint_path"]).read_text() == "weights"
    assert isinstance(TrainingRunDataset(str(tmp_path / "run.json"), str(tmp_path / "run")).load(), dict)


def test_recorded_folder_dataset_writes_in_place_with_the_record_format_asked(tmp_path: Path) -> None:
    """The split's copies are written where its record says they are, and split.json keeps its compact format."""
    entry = {"type": "pipelines.datasets.RecordedFolderDataset", "filepath": "split.json", "folder": "splits",
             "save_args": {"indent": 1, "sort_keys": True}}
    catalog = catalog_entry("dataset_split", entry, tmp_path)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "kept.wav").write_text("an earlier render")

    def split(folder: Path) -> dict:
        (folder / "train").mkdir()
        return {"output_dir": str(folder), "counts": {"train": 1}}

    catalog.save("dataset_split", split)
    record = catalog.load("dataset_split")
    assert record == {"output_dir": str(tmp_path / "splits"), "counts": {"train": 1}}
    assert (tmp_path / "splits" / "train").is_dir() and (tmp_path / "splits" / "kept.wav").exists()
    assert (tmp_path / "split.json").read_text() == json.dumps(record, indent=1, sort_keys=True)
    catalog.save("dataset_split", lambda folder: {"enabled": False})  # a disabled step writes its record only
    assert catalog.load("dataset_split") == {"enabled": False}
    with pytest.raises(DatasetError, match="writer"):
        catalog.save("dataset_split", {"not": "a writer"})


def test_unwrapped_model_dataset_moves_the_staged_file_into_place(tmp_path: Path) -> None:
    entry = {"type": "pipelines.datasets.UnwrappedModelDataset", "filepath": "model.json",
             "model_filepath": "models/model.safetensors"}
    catalog = catalog_entry("model", entry, tmp_path)
    staged = staged_file("model.safetensors")
    staged.write_bytes(b"12345")
    catalog.save("model", {"path": str(staged), "size_bytes": 0, "mlflow_run_id": "abc"})
    record = catalog.load("model")
    assert record == {"path": str(tmp_path / "models" / "model.safetensors"), "size_bytes": 5, "mlflow_run_id": "abc"}
    assert Path(record["path"]).read_bytes() == b"12345"
    assert not staged.parent.exists()  # the staging folder is gone with its file
    catalog.save("model", record)  # saving a record of the file in place only rewrites the record
    assert catalog.load("model") == record and catalog.exists("model")
    assert UnwrappedModelDataset(str(tmp_path / "none.json"), str(tmp_path / "none.safetensors"))._exists() is False


def test_a_record_without_a_file_removes_the_stale_one(tmp_path: Path) -> None:
    """A full fine-tune has no adapter: its record says so and an adapter of an earlier LoRA run does not stay."""
    entry = {"type": "pipelines.datasets.UnwrappedModelDataset", "filepath": "adapter.json",
             "model_filepath": "adapter.safetensors"}
    catalog = catalog_entry("adapter", entry, tmp_path)
    staged = staged_file("adapter.safetensors")
    staged.write_bytes(b"lora")
    catalog.save("adapter", {"path": str(staged)})
    assert (tmp_path / "adapter.safetensors").is_file()
    catalog.save("adapter", {"path": None, "lora_config": None})
    assert catalog.load("adapter") == {"path": None, "lora_config": None}
    assert not (tmp_path / "adapter.safetensors").exists() and not catalog.exists("adapter")
