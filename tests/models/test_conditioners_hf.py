"""``t5gemma`` and ``causal_lm`` conditioners (conditioners_hf) on tiny random models saved locally."""

from __future__ import annotations

import importlib

import pytest
import torch
import transformers
from transformers import AutoTokenizer

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.conditioners import (
    MultiConditioner,
    TextEncoderUnavailableError,
    create_multi_conditioner_from_conditioning_config,
    default_text_encoder_path,
)

# a 16-wide, one-layer Gemma-style stack (MiniLM's tokenizer: local, no download)
TINY = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 8}


def _tokenizer():
    return AutoTokenizer.from_pretrained(default_text_encoder_path())


@pytest.fixture(scope="module")
def t5gemma_folder(tmp_path_factory):
    """An encoder-decoder T5Gemma checkpoint, like google/t5gemma-b-b-ul2 (the conditioner loads the encoder)."""
    from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

    folder = tmp_path_factory.mktemp("t5gemma-local")
    tokenizer = _tokenizer()
    torch.manual_seed(0)
    module = T5GemmaModuleConfig(vocab_size=tokenizer.vocab_size, **TINY)
    config = transformers.T5GemmaConfig(encoder=module, decoder=module, vocab_size=tokenizer.vocab_size)
    transformers.T5GemmaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def causal_lm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gemma2-local")
    tokenizer = _tokenizer()
    torch.manual_seed(0)
    config = transformers.Gemma2Config(vocab_size=tokenizer.vocab_size, **TINY)
    transformers.Gemma2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _multi(type_: str, config: dict, monkeypatch, tmp_path, cond_dim: int = 8) -> MultiConditioner:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # the named Google models are not there
    cfg = {"cond_dim": cond_dim, "configs": [{"id": "prompt", "type": type_, "config": config}]}
    return create_multi_conditioner_from_conditioning_config(cfg, ConfigNode(cfg, "m.json", "model.conditioning"))


def _tokens(folder, texts: list[str], max_length: int) -> dict:
    return AutoTokenizer.from_pretrained(folder)(texts, max_length=max_length, padding="max_length", truncation=True,
                                                 return_tensors="pt")


def test_t5gemma_is_the_encoder_output_projected_with_padding_zeroed(t5gemma_folder, monkeypatch, tmp_path) -> None:
    multi = _multi("t5gemma", {"model_path": str(t5gemma_folder), "max_length": 10}, monkeypatch, tmp_path)
    cond = multi.conditioners["prompt"]
    assert cond.dim == 16  # from the model in model_path, not the 768 of the default name
    assert set(multi.state_dict()) == {"conditioners.prompt.proj_out.weight", "conditioners.prompt.proj_out.bias"}
    texts = ["a warm cello", "a distorted guitar riff with feedback"]
    emb, mask = multi([{"prompt": t} for t in texts], "cpu")["prompt"]
    assert emb.shape == (2, 10, 8) and mask.dtype == torch.bool
    assert not any(p.requires_grad for p in cond.model.parameters())  # frozen, outside the module tree
    tokens = _tokens(t5gemma_folder, texts, 10)
    assert mask.tolist() == tokens["attention_mask"].bool().tolist()
    full = transformers.T5GemmaModel.from_pretrained(t5gemma_folder)
    with torch.no_grad():
        hidden = full.get_encoder()(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        expected = cond.proj_out(hidden["last_hidden_state"]) * tokens["attention_mask"][..., None]
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-5)
    assert emb[0, ~mask[0]].abs().max() == 0
    assert (emb[0, 1] - emb[1, 1]).abs().max() > 1e-4


def test_t5gemma_learned_padding_and_errors(t5gemma_folder, monkeypatch, tmp_path) -> None:
    multi = _multi("t5gemma", {"model_path": str(t5gemma_folder), "max_length": 10, "padding_mode": "learned"},
                   monkeypatch, tmp_path)
    assert "conditioners.prompt.padding_embedding" in multi.state_dict()
    emb, mask = multi([{"prompt": "a harp"}], "cpu")["prompt"]
    torch.testing.assert_close(emb[0, ~mask[0]], multi.conditioners["prompt"].padding_embedding.expand(
        int((~mask[0]).sum()), -1))
    with pytest.raises(TextEncoderUnavailableError) as info:
        _multi("t5gemma", {}, monkeypatch, tmp_path)  # google/t5gemma-b-b-ul2 is not in this cache
    assert "configs[0].config.model_name" in str(info.value) and "local folder" in str(info.value)
    with pytest.raises(ConfigError, match=r"config\.model_name: unknown model 't5gemma-xl'"):
        _multi("t5gemma", {"model_name": "t5gemma-xl"}, monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match=r"config\.t5_model_name: unknown key"):
        _multi("t5gemma", {"t5_model_name": "t5-base"}, monkeypatch, tmp_path)


def test_t5gemma_on_a_transformers_without_t5gemma_names_the_needed_version(
        t5gemma_folder, monkeypatch, tmp_path) -> None:
    # a release before T5Gemma (sys.modules' transformers: its lazy loader may have replaced the module object)
    monkeypatch.setattr(importlib.import_module("transformers"), "__version__", "4.46.3")
    with pytest.raises(ConfigError, match=r"configs\[0\]\.config: the t5gemma conditioner needs transformers >= 4\.53 "
                                          r".*installed: 4\.46\.3"):
        _multi("t5gemma", {"model_path": str(t5gemma_folder)}, monkeypatch, tmp_path)


def test_causal_lm_normalises_scales_projects_and_saves_its_small_parts(causal_lm_folder, monkeypatch,
                                                                       tmp_path) -> None:
    multi = _multi("causal_lm", {"model_path": str(causal_lm_folder), "max_length": 9}, monkeypatch, tmp_path)
    cond = multi.conditioners["prompt"]
    assert set(multi.state_dict()) == {f"conditioners.prompt.{k}" for k in (
        "proj_out.weight", "proj_out.bias", "norm.scale", "scale")}  # upstream's keys; the LM itself is not saved
    assert float(cond.scale.detach()) == pytest.approx(0.01)
    texts = ["rain on a tin roof", "a choir"]
    emb, mask = multi([{"prompt": t} for t in texts], "cpu")["prompt"]
    assert emb.shape == (2, 9, 8) and mask.dtype == torch.bool
    tokens = _tokens(causal_lm_folder, texts, 9)
    lm = transformers.AutoModelForCausalLM.from_pretrained(causal_lm_folder)
    with torch.no_grad():
        hidden = lm(**tokens, output_hidden_states=True, use_cache=False)["hidden_states"][-1]
        normed = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + 1e-6)
        expected = cond.proj_out(normed * 0.01) * tokens["attention_mask"][..., None]
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-4)
    assert (emb[0, 1] - emb[1, 1]).abs().max() > 1e-5
    fixed = _multi("causal_lm", {"model_path": str(causal_lm_folder), "learned_scale": False}, monkeypatch, tmp_path,
                   cond_dim=16)
    assert set(fixed.state_dict()) == {"conditioners.prompt.norm.scale"}  # 16 == 16: Identity proj_out, no scale


def test_causal_lm_enable_grad_trains_and_saves_the_lm(causal_lm_folder, monkeypatch, tmp_path) -> None:
    multi = _multi("causal_lm", {"model_path": str(causal_lm_folder), "max_length": 6, "enable_grad": True},
                   monkeypatch, tmp_path)
    assert any(k.startswith("conditioners.prompt.model.") for k in multi.state_dict())
    emb, _ = multi([{"prompt": "a bell"}], "cpu")["prompt"]
    emb.sum().backward()
    lm_grads = [p.grad for n, p in multi.named_parameters() if ".model." in n and p.grad is not None]
    assert lm_grads and any(g.abs().max() > 0 for g in lm_grads)
