"""Adapter files: only adapter tensors, their config and base identity, applied onto a base without merging."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.adapters import attach_adapter, is_adapter_file, read_adapter, save_adapter
from stable_audio_ops.models.lora import LoRAConfig, apply_lora, has_lora, lora_state_dict
from tests.models.test_lora import random_model, run, train_steps

CONFIG = LoRAConfig(rank=4, alpha=8, targets=("self_attn", "ff"))


def trained_adapter(tmp_path):
    model = random_model()
    apply_lora(model, CONFIG)
    train_steps(model)
    path = save_adapter(tmp_path / "adapter.safetensors", lora_state_dict(model.state_dict()), CONFIG,
                        {"source": "base.safetensors", "weights_sha256": "abc"})
    return model, path


def test_adapter_file_holds_only_adapter_tensors_with_config_and_base(tmp_path) -> None:
    model, path = trained_adapter(tmp_path)
    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
    assert keys and all(k.endswith((".lora_A", ".lora_B")) for k in keys)
    assert len(keys) == 2 * 2 * 4  # depth 2 x (to_qkv, to_out, ff in, ff out) layers x (A, B)
    adapter = read_adapter(path)
    assert adapter.config == CONFIG and adapter.base_model["weights_sha256"] == "abc"
    assert metadata["format"] == "stable-audio-ops-lora"
    assert is_adapter_file(path) and not is_adapter_file(tmp_path / "missing.safetensors")
    assert sum(t.numel() for t in adapter.tensors.values()) < sum(p.numel() for p in model.parameters()) / 10


def test_attached_adapter_reproduces_the_trained_model_without_merging(tmp_path) -> None:
    trained, path = trained_adapter(tmp_path)
    base = random_model()  # same seed: the base the adapter was trained on
    attach_adapter(base, path)
    assert has_lora(base)
    with torch.no_grad():
        assert torch.equal(run(base), run(trained))


def test_an_adapter_for_another_model_is_refused_naming_the_file(tmp_path) -> None:
    _, path = trained_adapter(tmp_path)
    adapter = read_adapter(path)
    adapter.tensors = {k.replace("layers.1.", "layers.7."): v for k, v in adapter.tensors.items()}
    with pytest.raises(CheckpointError, match="adapter does not fit this model"):
        attach_adapter(random_model(), adapter)
    adapter = read_adapter(path)
    adapter.tensors = {k: torch.cat([v, v]) if k.endswith("lora_A") else v for k, v in adapter.tensors.items()}
    with pytest.raises(CheckpointError, match="adapter shapes differ"):
        attach_adapter(random_model(), adapter)


def test_non_adapter_files_and_tensors_are_rejected(tmp_path) -> None:
    from safetensors.torch import save_file

    plain = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a LoRA adapter file"):
        read_adapter(plain)
    with pytest.raises(ValueError, match="LoRA tensors only"):
        save_adapter(tmp_path / "a.safetensors", {"model.x.weight": torch.zeros(2)}, CONFIG)


def test_generation_with_an_unmerged_adapter_equals_the_merged_model(tmp_path) -> None:
    """Sampling caches conditioning work per generation (cross-attention keys/values): it must go through the
    adapted layers, so base + adapter generates what the merged model generates."""
    from stable_audio_ops.inference.entry import generate
    from stable_audio_ops.models.lora import merge_lora

    _, path = trained_adapter(tmp_path)
    unmerged = random_model()
    attach_adapter(unmerged, path)
    merged = random_model()
    attach_adapter(merged, path)
    merge_lora(merged)
    kwargs = {"steps": 4, "cfg_scale": 3.0, "sample_size": 512, "seed": 3,
              "conditioning": [{"prompt": "flute", "seconds_total": 0.03}]}
    with torch.no_grad():
        a = generate(unmerged, "diffusion_cond", **kwargs)
        b = generate(merged, "diffusion_cond", **kwargs)
        base = generate(random_model(), "diffusion_cond", **kwargs)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert not torch.allclose(a, base, atol=1e-4)
