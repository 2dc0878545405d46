"""Adapter-only registry versions: ``models:/NAME@alias`` of a version holding just a LoRA adapter loads as its
base + the adapter (in Python, the generate command and the MLflow pyfunc), with the fine-tune's lineage tags; a
base that is gone or changed is an error saying which base is needed and how to provide it."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import mlflow
from stable_audio_ops.cli.generate import main as generate_main
from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.adapters import save_adapter
from stable_audio_ops.models.lora import LoRAConfig, apply_lora, lora_state_dict
from stable_audio_ops.serving.model_loader import load_model as serving_load_model
from stable_audio_ops.tracking.adapter_versions import BASE_MODEL_ENV, is_adapter_version
from stable_audio_ops.tracking.lineage import file_sha256
from stable_audio_ops.tracking.loading import load_model
from stable_audio_ops.tracking.pretrained import resolve_pretrained_model
from stable_audio_ops.tracking.registration import fine_tune_registry_kinds, register_fine_tuned_adapter
from stable_audio_ops.tracking.registry import download_registered_model, log_model_to_registry
from tests.tracking.tiny_models import perturbed_copy, use_sqlite_store, write_tiny_models

LORA = LoRAConfig(rank=4, alpha=8, targets=("self_attn", "cross_attn", "ff"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny DiT whose zero-initialised branches are perturbed (so the prompt and the adapter change its output),
    a trained-looking adapter for it, and another DiT (a wrong base)."""
    root = tmp_path_factory.mktemp("adapter-versions")
    _, ld_path = write_tiny_models(root / "m")
    base = perturbed_copy(ld_path, root / "base.safetensors", scale=0.1, seed=3)
    model = load_model(base).model
    apply_lora(model, LORA)
    torch.manual_seed(1)
    with torch.no_grad():  # B no longer zero: the adapter changes the output
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.copy_(torch.randn_like(p) * 0.2)
    adapter = save_adapter(root / "adapter.safetensors", lora_state_dict(model.state_dict()), LORA,
                           {"source": str(base), "weights_file_sha256": file_sha256(base)})
    other = perturbed_copy(base, root / "other.safetensors", scale=0.01, seed=5)
    return {"base": base, "adapter": Path(adapter), "other": other}


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    """The DiT's prediction for fixed noise, times and prompts (what sampling is built from)."""
    generator = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 128, generator=generator), torch.rand(2, generator=generator)
    meta = [{"prompt": "flute", "seconds_total": 1.0}, {"prompt": "organ", "seconds_total": 1.0}]
    with torch.no_grad():
        return model(x, t, cond=model.conditioner(meta, "cpu"))


def _register(tiny: dict[str, Path], base_source: str | Path, name: str) -> dict:
    base = resolve_pretrained_model(base_source)  # what the fine_tune pipeline records as its base
    return register_fine_tuned_adapter({"path": tiny["adapter"], "lora_config": LORA.to_dict()}, name,
                                       base_model=base, training_run_id=None, metrics={"kid": 1.5})


@pytest.fixture(scope="module")
def store(tiny, tmp_path_factory):
    """One MLflow store for the module (creating one takes seconds): the base registered as ``base`` and the
    adapter as ``ft-lora`` naming ``models:/base@challenger``."""
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("store")
        uri = use_sqlite_store(root, patch)
        base = log_model_to_registry(tiny["base"], "base")
        yield {"uri": uri, "base": base, "registration": _register(tiny, "models:/base@challenger", "ft-lora")}


def test_adapter_version_of_a_registered_base_loads_by_alias_as_base_plus_adapter(tiny, store, tmp_path):
    registration, base_version = store["registration"], store["base"]
    # lineage as on a merged version, the base pinned to its version (not the alias, which moves)
    assert registration["version_kind"] == "adapter" and registration["fine_tune_mode"] == "lora"
    assert registration["base_model_version"] == base_version.version
    assert registration["base_model_weights_file_sha256"] == file_sha256(tiny["base"])
    assert registration["adapter_sha256"] == file_sha256(tiny["adapter"])
    tags = mlflow.MlflowClient().get_model_version("ft-lora", registration["version"]).tags
    assert tags["base_model_uri"] == f"models:/base/{base_version.version}" and tags["eval.kid"] == "1.5"
    assert json.loads(tags["lora_config"])["rank"] == 4
    folder, _ = download_registered_model("models:/ft-lora@challenger", dst_dir=tmp_path / "dl")
    weights = sorted(p.name for p in (folder / "artifacts").iterdir())
    assert is_adapter_version(folder) and weights == ["adapter.safetensors", "base_model.json"]  # no model copy

    by_alias = load_model("models:/ft-lora@challenger", tracking_uri=store["uri"])
    by_hand = load_model(tiny["base"], adapter=tiny["adapter"])
    assert torch.equal(_outputs(by_alias.model), _outputs(by_hand.model))
    assert not torch.allclose(_outputs(by_alias.model), _outputs(load_model(tiny["base"]).model), atol=1e-3)
    assert by_alias.name == "ft-lora@challenger" and by_alias.registry["version"] == registration["version"]
    assert by_alias.registry["base_model"].startswith(f"models:/base/{base_version.version}")
    assert not by_alias.model.training and not any(p.requires_grad for p in by_alias.model.parameters())

    # the same adapter again: that version, no new one
    assert _register(tiny, "models:/base@challenger", "ft-lora")["new"] is False
    with pytest.raises(ConfigError, match="cannot be stacked"):
        load_model("models:/ft-lora@challenger", adapter=tiny["adapter"])

    # the server's loader (sao-serve --model models:/...) and the generate command take the URI as any other
    served = serving_load_model("models:/ft-lora@challenger", device="cpu", tracking_uri=store["uri"])
    assert served.name == "ft-lora@challenger" and torch.equal(_outputs(served.model), _outputs(by_hand.model))
    common = ["--steps", "3", "--seed", "7", "--seconds", "0.03", "--no-progress", "--prompt", "flute"]
    assert generate_main(["--model", "models:/ft-lora@challenger", "--tracking-uri", store["uri"], *common,
                          "-o", str(tmp_path / "v.wav")]) == 0
    assert generate_main(["--model", str(tiny["base"]), "--adapter", str(tiny["adapter"]), *common,
                          "-o", str(tmp_path / "h.wav")]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "v.wav")[0], sf.read(tmp_path / "h.wav")[0])


def test_pyfunc_of_an_adapter_version_generates_base_plus_adapter_audio(tiny, store):
    import mlflow.pyfunc

    from stable_audio_ops.inference.entry import GENERATION_DEFAULTS
    from stable_audio_ops.serving.engine import Engine, GenerationSpec
    from stable_audio_ops.serving.settings import ServeSettings

    params = {"seconds_total": 0.1, "steps": 2, "seed": 7}
    out = mlflow.pyfunc.load_model("models:/ft-lora@challenger").predict([{"prompt": "flute"}], params=params)
    audio, sr = sf.read(io.BytesIO(base64.b64decode(out[0]["audio_wav_base64"])), dtype="float32")

    by_hand = load_model(tiny["base"], adapter=tiny["adapter"])  # the same engine over base + adapter by hand
    engine = Engine(by_hand, ServeSettings(model=str(tiny["base"]), warmup=False))
    spec = GenerationSpec(prompt="flute", negative_prompt="", seconds_total=0.1, steps=2,
                          cfg_scale=GENERATION_DEFAULTS.cfg_scale, seed=7, sampler=engine.default_sampler,
                          batch_size=1, format="wav", sample_size=engine.sample_size_for(0.1),
                          num_samples=engine.num_samples_for(0.1), conditioning={})
    expected, _ = sf.read(io.BytesIO(engine.run_batch([spec])[0].audio[0]), dtype="float32")
    assert sr == 16000 and np.abs(audio).max() > 0
    np.testing.assert_array_equal(audio, expected)


def test_a_deleted_base_version_is_an_error_naming_it_and_how_to_provide_it(tiny, store, monkeypatch):
    base_version = log_model_to_registry(tiny["other"], "base-to-delete")
    _register(tiny, "models:/base-to-delete@challenger", "ft-lora-deleted-base")
    mlflow.MlflowClient().delete_model_version("base-to-delete", base_version.version)
    with pytest.raises(CheckpointError) as missing:
        load_model("models:/ft-lora-deleted-base@challenger")
    message, sha = str(missing.value), file_sha256(tiny["other"])
    assert f"models:/base-to-delete/{base_version.version}" in message and sha in message
    assert "not found in the MLflow registry" in message and BASE_MODEL_ENV in message and "restore" in message

    monkeypatch.setenv(BASE_MODEL_ENV, str(tiny["other"]))  # a local copy of the base, checked by its hash
    expected = load_model(tiny["other"], adapter=tiny["adapter"]).model
    assert torch.equal(_outputs(load_model("models:/ft-lora-deleted-base@challenger").model), _outputs(expected))
    with pytest.raises(CheckpointError, match=rf"is not what base_model= .* has sha256 {file_sha256(tiny['base'])}"):
        load_model("models:/ft-lora-deleted-base@challenger", base_model=tiny["base"])


def test_adapter_version_of_a_local_folder_base_checks_the_folder_by_hash(tiny, store, tmp_path):
    folder = tmp_path / "stable-audio-open-tiny"  # the Hugging Face layout: model_config.json + model.safetensors
    folder.mkdir()
    (folder / "model_config.json").write_text(json.dumps(load_model(tiny["base"]).config))
    shutil.copy(tiny["base"], folder / "model.safetensors")
    registration = _register(tiny, folder, "ft-lora-folder-base")
    assert registration["base_model_source"] == str(folder) and "base_model_version" not in registration

    loaded = load_model("models:/ft-lora-folder-base@challenger")
    assert torch.equal(_outputs(loaded.model), _outputs(load_model(folder, adapter=tiny["adapter"]).model))

    weights, sha = folder / "model.safetensors", file_sha256(tiny["base"])
    shutil.copy(tiny["other"], weights)  # another model at the same path
    with pytest.raises(CheckpointError, match=rf"{weights} .*{sha}.*is not the model now at {weights}: .*"
                                              rf"{file_sha256(tiny['other'])}.*put the base's weights back"):
        load_model("models:/ft-lora-folder-base@challenger")
    weights.unlink()
    with pytest.raises(CheckpointError, match=rf"is missing \(no file at {weights}\).*{BASE_MODEL_ENV}"):
        load_model("models:/ft-lora-folder-base@challenger")


def test_registry_choice_merged_adapter_or_both():
    assert fine_tune_registry_kinds("both", "lora") == ("merged", "adapter")
    assert fine_tune_registry_kinds("adapter", "lora") == ("adapter",)
    assert fine_tune_registry_kinds("both", "full") == ("merged",)  # a full fine-tune has no adapter
    with pytest.raises(ConfigError, match=r"fine_tune\.registry\.register: 'adapter' needs mode lora"):
        fine_tune_registry_kinds("adapter", "full")
    with pytest.raises(ConfigError, match=r"fine_tune\.registry\.register: 'lora' is not one of: merged \| adapter"):
        fine_tune_registry_kinds("lora", "lora")
