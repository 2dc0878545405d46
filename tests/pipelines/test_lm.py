"""The lm pipeline: registered, its nodes chained in order, and run end to end by Kedro's SequentialRunner on a
handful of demo notes with a tiny dac_rvq autoencoder and a tiny LM (a few training steps each): int tokens of the
train clips, an LM whose tokenizer is the trained autoencoder, a report with held-out perplexity and generated clip
checks, and registry versions whose lineage names the tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from pipelines.datasets import FolderDataset, TrainingRunDataset, UnwrappedModelDataset
from pipelines.pipeline_registry import DEFAULT_ORDER, register_pipelines
from stable_audio_ops.config.lm import lm_model_config
from stable_audio_ops.data.preparation.demo_notes import render_demo_notes
from stable_audio_ops.data.preparation.probe import build_manifest
from stable_audio_ops.data.preparation.split import (
    TEST,
    TRAIN,
    materialize_split,
    plan_split,
    split_dataset_config,
)
from stable_audio_ops.models.checkpoints import read_embedded_model_config
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.tracking.loading import load_model
from tests.models.lm_fixtures import NUM_QUANTIZERS, TINY_AE, tiny_autoencoder_config, tiny_lm_config
from tests.pipelines.conftest import REPO, run_pipeline
from tests.tracking.tiny_models import use_sqlite_store

CONF = REPO / "conf" / "base"


def test_lm_pipeline_is_registered_and_chains_tokenizer_tokens_lm_report_registry() -> None:
    pipelines = register_pipelines()
    lm = pipelines["lm"]
    assert "lm" not in DEFAULT_ORDER  # run on its own: not part of the default run (its own DVC stage, not make demo)
    order = [n.name for n in lm.nodes]  # Kedro's topological order
    for before, after in [("train_lm_autoencoder", "unwrap_lm_autoencoder"), ("unwrap_lm_autoencoder",
                          "pre_encode_lm_tokens"), ("pre_encode_lm_tokens", "train_lm"), ("build_lm_config", "train_lm"),
                          ("train_lm", "unwrap_lm"), ("unwrap_lm", "evaluate_lm"), ("evaluate_lm", "register_lm")]:
        assert order.index(before) < order.index(after), (before, after)
    assert lm.inputs() == {"lm_autoencoder_model_config", "lm_base_model_config", "prepared_dataset_config",
                           "test_dataset_config", "params:lm", "params:lm.autoencoder"}
    catalog = {**yaml.safe_load((CONF / "catalog_lm.yml").read_text()), **yaml.safe_load((CONF / "catalog.yml").read_text())}
    assert {n for n in lm.datasets() if not n.startswith("params:")} <= set(catalog)  # every dataset is declared
    assert catalog["lm_report"]["dataset"]["filepath"] == "data/08_reporting/lm_report.md"

    # the shipped configs build: a quantizing tokenizer and an LM over it with the pre-encoded clip length
    ae_config = json.loads((CONF / "model_configs" / "autoencoder_rvq_demo.json").read_text())
    autoencoder = create_model_from_config(ae_config)
    assert autoencoder.is_discrete and autoencoder.downsampling_ratio == 128
    params = yaml.safe_load((CONF / "parameters_lm.yml").read_text())["lm"]
    config = lm_model_config(json.loads((CONF / "model_configs" / "lm_demo.json").read_text()), ae_config,
                             sample_size=params["pre_encode"]["sample_size"])
    model = create_model_from_config(config)
    assert (model.num_quantizers, model.codebook_size) == (4, 256) and config["training"]["pre_encoded"]


def prepared_notes(root: Path) -> tuple[dict, dict]:
    """8 demo notes (2 instruments x 2 pitches x 2 velocities) split as data_preparation splits them: one
    velocity of each pitch held out; the train and test dataset configs."""
    notes = root / "notes"
    render_demo_notes(notes, instruments=["flute", "church organ"], midi_low=60, midi_high=61, velocities=(40, 120),
                      progress=False)
    plan = plan_split(build_manifest(notes / "audio", progress=False), [notes / "audio"], every_nth_pitch=1)
    manifest = materialize_split(plan, root / "splits")
    dataset = yaml.safe_load((CONF / "parameters_data_preparation.yml").read_text())["data_preparation"]["dataset"]
    return split_dataset_config(manifest, TRAIN, dataset), split_dataset_config(manifest, TEST, dataset)


def tiny_params() -> dict:
    params = yaml.safe_load((CONF / "parameters_lm.yml").read_text())["lm"]
    params["autoencoder"]["train"].update(max_steps=2, batch_size=4, checkpoint_every=2)
    params["pre_encode"].update(sample_size=1024, batch_size=8)
    params["train"].update(max_steps=3, batch_size=4, checkpoint_every=3)
    params["evaluation"]["generation"].update(num_clips=2, sample_size=256, top_k=8)
    params["registry"].update(autoencoder_name="t-lm-ae", name="t-lm")
    return params


def test_lm_pipeline_end_to_end_on_demo_notes(tmp_path: Path, monkeypatch) -> None:
    use_sqlite_store(tmp_path, monkeypatch)
    train_config, test_config = prepared_notes(tmp_path)
    ae_config = {"model_type": "autoencoder", "sample_rate": 16000, "sample_size": 1024, "audio_channels": 1,
                 "model": tiny_autoencoder_config("dac_rvq"),
                 "training": json.loads(TINY_AE.read_text())["training"]}
    lm_config = tiny_lm_config("dac_rvq", conditioned=False)
    out_dir = tmp_path / "out"
    out = run_pipeline(register_pipelines()["lm"], {
        "lm_autoencoder_model_config": ae_config, "lm_base_model_config": lm_config, "params:lm": tiny_params(),
        "params:lm.autoencoder": tiny_params()["autoencoder"], "prepared_dataset_config": train_config,
        "test_dataset_config": test_config}, datasets={
        "lm_autoencoder_training_result": TrainingRunDataset(str(out_dir / "ae.json"), run_dir=str(out_dir / "ae")),
        "lm_autoencoder_model": UnwrappedModelDataset(str(out_dir / "ae_model.json"), str(out_dir / "ae.safetensors")),
        "lm_tokens": FolderDataset(str(out_dir / "tokens")),
        "lm_training_result": TrainingRunDataset(str(out_dir / "lm.json"), run_dir=str(out_dir / "lm")),
        "lm_model": UnwrappedModelDataset(str(out_dir / "lm_model.json"), str(out_dir / "lm.safetensors")),
        "lm_generated": FolderDataset(str(out_dir / "generated"))})

    # tokens: one int [codebooks, frames] array per train clip, never the test clips
    tokens = sorted((out_dir / "tokens").glob("*/*.npy"))
    train_clips = len(list(Path(train_config["datasets"][0]["path"]).rglob("*.wav")))
    assert len(tokens) == train_clips > 0
    first = np.load(tokens[0])
    assert first.dtype.kind == "i" and first.shape == (NUM_QUANTIZERS, 1024 // 8)

    # the LM trained over the trained tokenizer, and its unwrapped file loads strictly and generates
    ae_embedded = read_embedded_model_config(out_dir / "ae.safetensors")
    config = out["lm_model_config"]
    assert config["model"]["pretransform"]["config"] == ae_embedded["model"] and config["sample_size"] == 1024
    assert read_embedded_model_config(out_dir / "lm.safetensors") == config

    # the report: held-out perplexity against log(codebook_size), generated clips finite and non-silent
    evaluation = out["lm_evaluation"]
    perplexity = evaluation["perplexity"]
    test_clips = len(list(Path(test_config["datasets"][0]["path"]).rglob("*.wav")))
    assert perplexity["clips"] == test_clips > 0 and perplexity["tokens"] > 0
    assert math.isfinite(perplexity["cross_entropy"]) and perplexity["perplexity"] == math.exp(perplexity["cross_entropy"])
    assert perplexity["uniform_cross_entropy"] == math.log(16)
    report = out["lm_report"]
    assert f"| lm | {perplexity['cross_entropy']:.3f} |" in report and "| uniform (log 16) |" in report
    assert len(evaluation["clips"]) == 2 and all(c["finite"] for c in evaluation["clips"])
    assert ("All clips finite and non-silent: yes" in report) == evaluation["all_clips_ok"]
    wavs = sorted((out_dir / "generated").glob("*.wav"))
    assert [w.name for w in wavs] == ["clip_0.wav", "clip_1.wav"] and sf.info(str(wavs[0])).frames == 256
    assert out["lm_evaluation_metrics"]["perplexity"]["value"] == perplexity["perplexity"]

    # do the tokens decode to notes: the generated clips' pitched accuracy beside real test clips and noise
    pitched = evaluation["pitched"]
    assert pitched["midi_range"] == [60, 61] and set(pitched["results"]) == {"generated", "real", "noise"}
    assert pitched["results"]["real"]["pitched_acc_acf"] == 1.0 and pitched["results"]["noise"]["pitched_acc_acf"] == 0
    assert 0.0 <= pitched["results"]["generated"]["pitched_acc_crepe"] <= 1.0
    metrics = out["lm_evaluation_metrics"]
    assert {"pitched.generated.pitched_acc_acf", "pitched.real.pitched_acc_crepe"} <= set(metrics)
    assert all(math.isfinite(m["value"]) for m in metrics.values())
    assert "## Do the generated tokens decode to notes?" in report and "| noise | 4 |" in report

    # registry: tokenizer and LM registered, the LM's lineage verified against the tokenizer's weights
    registration = out["lm_registration"]
    assert registration["autoencoder"]["name"] == "t-lm-ae" and registration["lm"]["model_type"] == "lm"
    assert registration["lm"]["autoencoder_version"] == registration["autoencoder"]["version"]
    assert registration["lm"]["autoencoder_lineage"].startswith("verified")
    assert float(registration["lm"]["eval.perplexity"]) == pytest.approx(perplexity["perplexity"], rel=1e-5)
    registered = load_model(f"models:/t-lm/{registration['lm']['version']}")
    assert registered.model_type == "lm" and registered.config == config
    assert torch.isfinite(next(iter(registered.model.state_dict().values()))).all()
