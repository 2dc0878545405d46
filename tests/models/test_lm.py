"""``model_type: lm``: building upstream-shaped configs, upstream key names, strict reloads, causality, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.lm import AudioLanguageModelWrapper
from stable_audio_ops.models.loading import load_local_model
from tests.models.lm_fixtures import CODEBOOK_SIZE, NUM_QUANTIZERS, tiny_lm_config


def _build(config: dict, seed: int = 0) -> AudioLanguageModelWrapper:
    torch.manual_seed(seed)
    return create_model_from_config(config).eval()


def test_state_dict_uses_upstream_key_names_and_reloads_strictly(tmp_path: Path) -> None:
    config = tiny_lm_config()
    model = _build(config)
    state = model.state_dict()
    for k in range(NUM_QUANTIZERS):
        assert state[f"lm.embeds.{k}.weight"].shape == (CODEBOOK_SIZE + 1, 64)  # + the special token row
        assert state[f"lm.quantizer_heads.{k}.weight"].shape == (CODEBOOK_SIZE, 64)
        assert state[f"lm.quantizer_heads.{k}.bias"].shape == (CODEBOOK_SIZE,)
    assert "lm.backbone.model.project_in.weight" in state and "lm.backbone.model.layers.1.cross_attn.to_q.weight" in state
    assert "conditioner.conditioners.label.embedder.weight" in state
    assert any(k.startswith("pretransform.model.encoder.") for k in state)
    prefixes = {k.split(".")[0] for k in state}
    assert prefixes == {"lm", "pretransform", "conditioner"}

    path = tmp_path / "lm.safetensors"
    save_model_checkpoint(state, path, model_config=config)
    reloaded = load_local_model(path).model  # built from the embedded config; strict: any key mismatch fails
    codes = torch.randint(0, CODEBOOK_SIZE, (2, NUM_QUANTIZERS, 12))
    cond = model.conditioner([{"label": "low"}, {"label": "high"}], "cpu")
    with torch.no_grad():
        ours, theirs = model.compute_logits(codes, cond), reloaded.compute_logits(codes, cond)
    assert torch.equal(ours.mask, theirs.mask) and torch.equal(ours.logits[ours.mask], theirs.logits[theirs.mask])


def test_upstream_projection_and_prepend_options_build_with_their_key_names() -> None:
    config = tiny_lm_config()
    lm = config["model"]["lm"]
    lm["config"].update(project_cross_attn_cond=True, prepend_cond_dim=32)
    lm["prepend_cond_ids"] = ["label"]
    model = _build(config)
    state = model.state_dict()
    assert state["lm.backbone.to_prepend_embed.0.weight"].shape == (64, 32)
    assert state["lm.backbone.to_cross_attn_embed.2.weight"].shape == (64, 64)
    codes = torch.randint(0, CODEBOOK_SIZE, (2, NUM_QUANTIZERS, 6))
    cond = model.conditioner([{"label": "low"}, {"label": "high"}], "cpu")
    with torch.no_grad():
        out = model.compute_logits(codes, cond)
    assert out.logits.shape == (2, NUM_QUANTIZERS, 6, CODEBOOK_SIZE)


def test_a_code_is_predicted_from_earlier_pattern_steps_only() -> None:
    """Causality through the delay pattern: codebook 0 of timestep t is predicted before any code of t is seen;
    codebook 1 of t after codebook 0 of t."""
    model = _build(tiny_lm_config(conditioned=False))
    codes = torch.randint(0, CODEBOOK_SIZE, (1, NUM_QUANTIZERS, 10))
    changed = codes.clone()
    changed[:, 0, 5] = (codes[:, 0, 5] + 1) % CODEBOOK_SIZE  # only codebook 0 of timestep 5
    with torch.no_grad():
        a, b = model.compute_logits(codes).logits, model.compute_logits(changed).logits
    same = (a - b).abs().amax(dim=-1)[0] < 1e-6  # [K, T]
    assert same[0, :6].all() and not same[0, 6:].any()  # codebook 0: timesteps <= 5 unchanged
    assert same[1, :5].all() and not same[1, 5]  # codebook 1 of timestep 5 sees codebook 0 of timestep 5


def test_cfg_dropout_swaps_in_the_null_conditioning() -> None:
    model = _build(tiny_lm_config())
    codes = torch.randint(0, CODEBOOK_SIZE, (2, NUM_QUANTIZERS, 8))
    cond = model.conditioner([{"label": "low"}, {"label": "high"}], "cpu")
    tokens = cond["label"][0]
    with torch.no_grad():
        dropped = model.compute_logits(codes, cond, cfg_dropout_prob=1.0)
        null = model.lm.compute_logits(codes, cross_attn_cond=torch.zeros_like(tokens))
        kept = model.compute_logits(codes, cond, cfg_dropout_prob=0.0)
        conditioned = model.lm.compute_logits(codes, cross_attn_cond=tokens)
    m = dropped.mask
    assert torch.equal(dropped.logits[m], null.logits[m]) and torch.equal(kept.logits[m], conditioned.logits[m])
    assert not torch.allclose(kept.logits[m], null.logits[m])


@pytest.mark.parametrize("route", ["prepend", "global"])
def test_prepend_and_global_conditioning_reach_the_backbone(route: str) -> None:
    """0.0.20 drops global conditioning in the backbone; here it modulates the blocks (adaLN)."""
    config = tiny_lm_config()
    lm = config["model"]["lm"]
    del lm["cross_attention_cond_ids"], lm["config"]["cross_attn_cond_dim"]
    if route == "prepend":
        lm["prepend_cond_ids"], lm["config"]["prepend_cond_dim"] = ["label"], 32
    else:
        lm["global_cond_ids"], lm["config"]["global_cond_dim"] = ["label"], 32
    model = _build(config)
    codes = torch.randint(0, CODEBOOK_SIZE, (1, NUM_QUANTIZERS, 8)).expand(2, -1, -1)
    cond = model.conditioner([{"label": "low"}, {"label": "high"}], "cpu")
    with torch.no_grad():
        out = model.compute_logits(codes, cond)
    assert not torch.allclose(out.logits[0][out.mask[0]], out.logits[1][out.mask[1]])
    if route == "global":
        del lm["config"]["global_cond_dim"]
        assert "model.lm.config.global_cond_dim: must be 32" in _error(config)


@pytest.mark.parametrize("bottleneck", ["rvq", "dac_rvq"])
def test_tokens_convert_to_codes_and_decode_through_the_pretransform(bottleneck: str) -> None:
    model = _build(tiny_lm_config(bottleneck, conditioned=False))
    audio = torch.randn(2, 1, 256)
    with torch.no_grad():
        tokens = model.pretransform.tokenize(audio)  # the bottleneck's own layout (pre-encoded files use it)
        codes = model.tokenize(audio)
        assert codes.shape == (2, NUM_QUANTIZERS, 32) and codes.dtype == torch.long
        assert torch.equal(model.tokens_from_codes(codes), tokens)
        assert torch.equal(model.codes_from_tokens(tokens.float()), codes)  # pre-encoded tokens load as float
        decoded = model.decode_codes(codes)
        expected = model.pretransform.model.decode_tokens(tokens)
    assert decoded.shape == (2, 1, 256) and torch.allclose(decoded, expected)


@pytest.mark.parametrize("pattern", ["parallel", "unroll", "musiclm"])
def test_every_pattern_trains_on_aligned_logits(pattern: str) -> None:
    config = tiny_lm_config(conditioned=False, pattern=pattern)
    if pattern == "musiclm":  # pairs of codebooks
        config["model"]["pretransform"]["config"]["bottleneck"]["config"]["num_quantizers"] = 2
    model = _build(config)
    k = model.num_quantizers
    out = model.compute_logits(torch.randint(0, CODEBOOK_SIZE, (2, k, 5)))
    assert out.logits.shape == (2, k, 5, CODEBOOK_SIZE)
    assert not out.logits[out.mask].isnan().any()


def _error(config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        create_model_from_config(config, source="lm.json")
    return str(info.value)


def test_bad_lm_configs_name_the_key() -> None:
    config = tiny_lm_config()
    config["model"]["pretransform"]["config"]["bottleneck"] = {"type": "tanh"}
    assert "model.pretransform" in _error(config) and "discrete pretransform" in _error(config)

    config = tiny_lm_config()
    config["model"]["lm"]["cross_attention_cond_ids"] = ["prompt"]
    assert "model.lm.cross_attention_cond_ids[0]" in _error(config) and "'prompt'" in _error(config)

    config = tiny_lm_config()
    config["model"]["lm"]["config"]["cross_attn_cond_dim"] = 64
    assert "model.lm.config.cross_attn_cond_dim" in _error(config) and "32-dim" in _error(config)

    config = tiny_lm_config()
    config["model"]["lm"]["config"]["causal"] = False
    assert "model.lm.config.causal" in _error(config)

    config = tiny_lm_config()
    config["model"]["lm"]["config"]["depht"] = 2
    assert "model.lm.config.depht" in _error(config) and "unknown key" in _error(config)

    config = tiny_lm_config()
    config["model"]["lm"]["codebook_pattern"] = "coarse_first"
    assert "model.lm.codebook_pattern" in _error(config)

    config = tiny_lm_config(pattern="musiclm")
    assert "model.lm.codebook_pattern" in _error(config) and "pairs" in _error(config)
