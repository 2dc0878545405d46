"""LoRA on the DiT: a fresh adapter changes nothing, training moves only adapters, merging keeps the output."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.lora import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    base_state_dict,
    count_parameters,
    has_lora,
    lora_config_from_mapping,
    lora_state_dict,
    merge_lora,
    merge_lora_state_dict,
    target_names,
)

CONFIG = json.loads((Path(__file__).parents[1] / "fixtures" / "configs" / "dit_tiny.json").read_text())
METADATA = [{"prompt": "flute", "seconds_total": 1.0}, {"prompt": "organ", "seconds_total": 2.0}]


def random_model(seed: int = 0):
    """The tiny DiT with every weight random (its zero-initialised output layers would hide any change)."""
    torch.manual_seed(seed)
    model = create_model_from_config(copy.deepcopy(CONFIG))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def run(model, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 64, generator=gen)
    t = torch.rand(2, generator=gen)
    cond = model.conditioner(METADATA, "cpu")
    return model(x, t, cond=cond, cfg_dropout_prob=0.0)


def train_steps(model, steps: int = 3) -> None:
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(steps):
        loss = run(model, seed=step).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def test_a_fresh_adapter_leaves_the_output_bitwise_unchanged() -> None:
    model = random_model()
    with torch.no_grad():
        before = run(model)
        names = apply_lora(model, LoRAConfig(rank=4, alpha=8))
        after = run(model)
    assert names and has_lora(model)
    assert torch.equal(before, after)


def test_targets_select_attention_projections_and_feed_forward_layers() -> None:
    model = random_model()
    self_attn = target_names(model, ["self_attn"])
    cross = target_names(model, ["cross_attn"])
    ff = target_names(model, ["ff"])
    assert {n.rsplit(".", 1)[1] for n in self_attn} == {"to_qkv", "to_out"}
    assert {n.rsplit(".", 1)[1] for n in cross} == {"to_q", "to_kv", "to_out"}
    assert len(self_attn) == 2 * 2 and len(cross) == 3 * 2  # depth 2
    assert all(".ff.ff." in n for n in ff) and len(ff) == 2 * 2  # GLU proj + output layer per block
    assert all(n.startswith("conditioner.") for n in target_names(model, ["conditioners"]))
    assert target_names(model, ["cond_embed"]) == ["model.model.to_cond_embed.0", "model.model.to_cond_embed.2",
                                                   "model.model.to_global_embed.0", "model.model.to_global_embed.2"]


def test_after_training_steps_only_adapter_parameters_changed() -> None:
    model = random_model()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, LoRAConfig(rank=4, alpha=4, targets=("self_attn", "cross_attn", "ff")))
    trainable, total = count_parameters(model)
    assert 0 < trainable < total
    assert all(name.endswith(("lora_A", "lora_B")) for name, p in model.named_parameters() if p.requires_grad)
    train_steps(model)
    after = model.state_dict()
    for key, value in base.items():
        assert torch.equal(after[key], value), f"{key} changed but is not an adapter parameter"
    adapters = lora_state_dict(after)
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in adapters.items() if k.endswith("lora_B"))


def test_merged_model_gives_the_adapted_output_and_upstream_keys() -> None:
    model = random_model()
    reference_keys = list(model.state_dict())
    apply_lora(model, LoRAConfig(rank=4, alpha=16, targets=("self_attn", "cross_attn", "ff", "cond_embed")))
    train_steps(model)
    with torch.no_grad():
        adapted = run(model)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        merge_lora(model)
        merged = run(model)
    assert not has_lora(model)
    assert list(model.state_dict()) == reference_keys
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=0)
    # the state-dict merge (what export uses) equals the module merge
    by_state = merge_lora_state_dict(state, LoRAConfig(rank=4, alpha=16))
    assert set(by_state) == set(reference_keys)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(by_state[key], value, atol=1e-6, rtol=0)
    assert set(base_state_dict(state)) == set(reference_keys)


def test_dropout_is_active_in_training_only() -> None:
    model = random_model()
    apply_lora(model, LoRAConfig(rank=4, alpha=4, dropout=0.5))
    layer = next(m for m in model.modules() if isinstance(m, LoRALinear))
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(3, layer.in_features)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    torch.manual_seed(0)
    first = layer(x)
    torch.manual_seed(1)
    assert not torch.equal(first, layer(x))


@pytest.mark.parametrize(("values", "key", "message"), [
    ({"rank": 0}, "training.lora.rank", "positive int"),
    ({"targets": ["attn"]}, "training.lora.targets[0]", "unknown LoRA target 'attn'"),
    ({"dropout": 1.0}, "training.lora.dropout", "[0, 1)"),
    ({"ranks": 4}, "training.lora.ranks", "unknown key"),
])
def test_bad_lora_settings_name_the_key(values, key, message) -> None:
    with pytest.raises(ConfigError) as info:
        lora_config_from_mapping(values, "model.json", "training.lora")
    assert key in str(info.value) and message in str(info.value) and "model.json" in str(info.value)


def test_alpha_defaults_to_rank_and_adapters_are_not_stacked() -> None:
    assert lora_config_from_mapping({"rank": 8}).scaling == 1.0
    model = random_model()
    apply_lora(model, LoRAConfig(rank=2))
    with pytest.raises(ValueError, match="already carries LoRA"):
        apply_lora(model, LoRAConfig(rank=2))
