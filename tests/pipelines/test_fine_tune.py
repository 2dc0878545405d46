"""The fine_tune pipeline by Kedro's SequentialRunner over a DataCatalog: a tiny pretrained DiT in the Hugging Face
folder layout of Stable Audio Open, LoRA-fine-tuned for a few steps on rendered demo notes.

What a user relies on: the latents come from the base's own pretransform; only the adapted layers change; the
adapter file holds adapter tensors only and names its base; base + adapter (unmerged) gives the merged model's
output; base and fine-tune are judged on the same captions; the registered versions (merged, and the adapter alone,
which loads by alias as base + adapter) record the same lineage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from pipelines.datasets import FolderDataset, TrainingRunDataset, UnwrappedModelDataset
from pipelines.fine_tune.pipeline import create_pipeline
from stable_audio_ops.data.preparation.demo_notes import render_demo_notes
from stable_audio_ops.data.preparation.probe import build_manifest
from stable_audio_ops.data.preparation.split import (
    TEST,
    TRAIN,
    materialize_split,
    plan_split,
    split_dataset_config,
)
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict
from stable_audio_ops.models.lora import adapted_layers
from stable_audio_ops.tracking.lineage import file_sha256, state_dict_sha256
from stable_audio_ops.tracking.loading import load_model
from tests.pipelines.conftest import REPO, run_pipeline
from tests.pipelines.test_evaluation import PARAMS as EVALUATION_PARAMS
from tests.tracking.tiny_models import use_sqlite_store, write_tiny_models


def base_folder(root: Path) -> tuple[Path, Path]:
    """A tiny random DiT (with the tiny autoencoder as pretransform) as model_config.json + model.safetensors."""
    ae_path, dit_path = write_tiny_models(root / "tiny")
    folder = root / "stable-audio-open-tiny"
    folder.mkdir()
    (folder / "model_config.json").write_text(json.dumps(load_model(dit_path).config))
    shutil.copy(dit_path, folder / "model.safetensors")
    return folder, ae_path


def prepared_data(root: Path) -> tuple[dict, dict]:
    notes = root / "notes"
    render_demo_notes(notes, instruments=["flute", "church organ"], midi_low=60, midi_high=63, velocities=(40, 120),
                      progress=False)
    plan = plan_split(build_manifest(notes / "audio", progress=False), [notes / "audio"], every_nth_pitch=1)
    manifest = materialize_split(plan, root / "splits")
    options = yaml.safe_load((REPO / "conf/base/parameters_data_preparation.yml").read_text())
    dataset = options["data_preparation"]["dataset"]  # captions from the sidecars, as data_preparation writes it
    return split_dataset_config(manifest, TRAIN, dataset), split_dataset_config(manifest, TEST, dataset)


def fine_tune_params(base: Path) -> dict:
    params = yaml.safe_load((REPO / "conf/base/parameters_fine_tune.yml").read_text())["fine_tune"]
    params.update(base_model=str(base), registry={"register": "both", "name": "t-fine-tuned",
                                                      "adapter_name": "t-fine-tuned-lora"},
                  lora={"rank": 4, "alpha": 8, "dropout": 0.0, "targets": ["self_attn", "cross_attn", "ff"]})
    params["optimizer"]["config"]["lr"] = 1e-2
    params["pre_encode"].update(sample_size=1024, batch_size=4)
    params["train"].update(max_steps=4, batch_size=2, checkpoint_every=2, threads=1)
    return params


def catalog_datasets(root: Path) -> dict:
    return {"fine_tune_latents": FolderDataset(str(root / "latents")),
            "fine_tune_pretransform": UnwrappedModelDataset(str(root / "pt.json"), str(root / "pt.safetensors")),
            "fine_tune_training_result": TrainingRunDataset(str(root / "training.json"), run_dir=str(root / "run")),
            "fine_tuned_model": UnwrappedModelDataset(str(root / "model.json"), str(root / "fine_tuned.safetensors")),
            "fine_tune_adapter": UnwrappedModelDataset(str(root / "adapter.json"), str(root / "adapter.safetensors"))}


def test_lora_fine_tune_pipeline_from_a_model_folder(tmp_path, monkeypatch) -> None:
    use_sqlite_store(tmp_path, monkeypatch)
    base, ae_path = base_folder(tmp_path)
    train_config, test_config = prepared_data(tmp_path)
    out = run_pipeline(create_pipeline(), {
        "params:fine_tune": fine_tune_params(base), "params:evaluation": EVALUATION_PARAMS,
        "prepared_dataset_config": train_config, "test_dataset_config": test_config},
        datasets=catalog_datasets(tmp_path / "out"))

    identity = out["fine_tune_base_model"]
    assert identity["weights_file_sha256"] == file_sha256(base / "model.safetensors")
    # pre-encoded with the base's own pretransform (the autoencoder whose weights it carries), every train clip
    pretransform = load_ckpt_state_dict(out["fine_tune_pretransform"]["path"])
    assert state_dict_sha256(pretransform) == state_dict_sha256(load_ckpt_state_dict(ae_path))
    assert out["fine_tune_latents_summary"]["count"] == len(list(Path(train_config["datasets"][0]["path"])
                                                                   .rglob("*.wav")))
    assert out["fine_tune_model_config"]["training"]["lora"]["rank"] == 4

    # the adapter: adapter tensors only, naming its base
    adapter = out["fine_tune_adapter"]
    with safe_open(adapter["path"], framework="pt") as handle:
        keys, metadata = list(handle.keys()), handle.metadata()
    assert keys and all(k.endswith((".lora_A", ".lora_B")) for k in keys)
    assert json.loads(metadata["base_model"])["weights_file_sha256"] == identity["weights_file_sha256"]

    # merged: only the adapted layers' weights differ from the base
    base_state = load_ckpt_state_dict(base / "model.safetensors")
    merged_state = load_ckpt_state_dict(out["fine_tuned_model"]["path"])
    adapted = {f"{layer}.weight" for layer in adapted_layers(keys)}
    assert set(merged_state) == set(base_state)
    assert all(torch.equal(merged_state[k], v) for k, v in base_state.items() if k not in adapted)
    assert any(not torch.equal(merged_state[k], base_state[k]) for k in adapted)

    # base + adapter, unmerged, generates like the merged model
    unmerged = load_model(base, adapter=adapter["path"]).model
    merged = load_model(out["fine_tuned_model"]["path"]).model
    torch.manual_seed(0)
    x, t = torch.randn(2, 4, 128), torch.rand(2)
    meta = [{"prompt": "flute", "seconds_total": 1.0}, {"prompt": "organ", "seconds_total": 1.0}]
    with torch.no_grad():
        torch.testing.assert_close(unmerged(x, t, cond=unmerged.conditioner(meta, "cpu")),
                                   merged(x, t, cond=merged.conditioner(meta, "cpu")), atol=1e-5, rtol=0)

    evaluation = out["fine_tune_evaluation"]
    assert {"base", "fine_tuned", "delta", "real", "noise"} <= set(evaluation)
    assert evaluation["delta"]["pitch_acc_acf"] == pytest.approx(
        evaluation["fine_tuned"]["pitch_acc_acf"] - evaluation["base"]["pitch_acc_acf"])

    # registry.register: both -> a merged version and an adapter-only version, with the same lineage
    registration = out["fine_tune_registration"]["merged"]
    assert registration["fine_tune_mode"] == "lora" and registration["base_model_source"] == str(base)
    assert registration["adapter_sha256"] == file_sha256(adapter["path"])
    registered = load_model(f"models:/t-fine-tuned/{registration['version']}")
    assert state_dict_sha256(registered.model.state_dict()) == state_dict_sha256(merged_state)
    adapter_version = out["fine_tune_registration"]["adapter"]
    lineage = ("base_model_source", "base_model_weights_file_sha256", "lora_config", "adapter_sha256", "git_commit",
               "dvc_data_hash", "training_run_id", "eval.pitch_acc_acf")
    assert {k: adapter_version[k] for k in lineage} == {k: registration[k] for k in lineage}
    assert (adapter_version["version_kind"], registration["version_kind"]) == ("adapter", "merged")
    by_alias = load_model("models:/t-fine-tuned-lora@challenger").model  # base + adapter, from the registry
    with torch.no_grad():
        torch.testing.assert_close(by_alias(x, t, cond=by_alias.conditioner(meta, "cpu")),
                                   unmerged(x, t, cond=unmerged.conditioner(meta, "cpu")), atol=0, rtol=0)

