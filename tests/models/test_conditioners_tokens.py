"""``lut`` and ``phoneme`` conditioners (conditioners_tokens)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoTokenizer

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.conditioners import (
    MultiConditioner,
    TextEncoderUnavailableError,
    create_multi_conditioner_from_conditioning_config,
    default_text_encoder_path,
)
from stable_audio_ops.models.conditioners_tokens import PhonemeConditioner


def _multi(type_: str, config: dict, cond_dim: int = 8) -> MultiConditioner:
    cfg = {"cond_dim": cond_dim, "configs": [{"id": "prompt", "type": type_, "config": config}]}
    return create_multi_conditioner_from_conditioning_config(cfg, ConfigNode(cfg, "m.json", "model.conditioning"))


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))


def test_lut_embeds_token_ids_with_a_bool_mask_and_zeroed_padding(offline) -> None:
    torch.manual_seed(0)
    folder = default_text_encoder_path()
    multi = _multi("lut", {"model_path": folder, "max_length": 12})
    cond = multi.conditioners["prompt"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert set(multi.state_dict()) == {"conditioners.prompt.token_embedder.weight"}  # upstream key, no proj_out
    assert cond.token_embedder.weight.shape == (len(tokenizer), 8)
    texts = ["a soft piano note", "a bright trumpet blast with a hall reverb", "a soft piano note"]
    emb, mask = multi([{"prompt": t} for t in texts], "cpu")["prompt"]
    assert emb.shape == (3, 12, 8) and mask.shape == (3, 12) and mask.dtype == torch.bool
    ids = tokenizer(texts[0], max_length=12, padding="max_length", truncation=True, return_tensors="pt")
    assert mask[0].tolist() == ids["attention_mask"][0].bool().tolist()
    n = int(mask[0].sum())
    torch.testing.assert_close(emb[0, :n], cond.token_embedder.weight[ids["input_ids"][0, :n]])
    assert emb[0, n:].abs().max() == 0 and n < int(mask[1].sum())
    torch.testing.assert_close(emb[0], emb[2])
    assert (emb[0] - emb[1]).abs().max() > 1e-3
    assert emb.requires_grad  # the table is trained with the model


def test_lut_positions_special_tokens_and_projection(offline) -> None:
    torch.manual_seed(0)
    folder = default_text_encoder_path()
    base = len(AutoTokenizer.from_pretrained(folder))
    multi = _multi("lut", {"model_path": folder, "max_length": 6, "use_abs_pos_emb": True, "project_out": True,
                           "special_tokens": ["<drums>", "<bass>"]})
    cond = multi.conditioners["prompt"]
    assert set(multi.state_dict()) == {f"conditioners.prompt.{k}" for k in (
        "token_embedder.weight", "abs_pos_emb.emb.weight", "proj_out.weight", "proj_out.bias")}
    assert cond.token_embedder.num_embeddings == base + 2
    emb, mask = multi([{"prompt": "<drums> kick"}, {"prompt": "<bass> kick"}], "cpu")["prompt"]
    assert emb.shape == (2, 6, 8)
    assert (emb[0, 1] - emb[1, 1]).abs().max() > 1e-3  # the added tokens get their own rows
    # positions are added everywhere, padding included (as upstream): padded rows are the position table
    pad = ~mask[0]
    assert pad.any()
    pos = cond.abs_pos_emb.emb.weight * cond.abs_pos_emb.scale
    torch.testing.assert_close(emb[0, pad], pos[pad])


def test_lut_without_local_tokenizer_and_unknown_key_are_errors(offline) -> None:
    with pytest.raises(TextEncoderUnavailableError) as info:
        _multi("lut", {"tokenizer_name": "no-such-org/no-such-tokenizer"})
    message = str(info.value)
    assert "configs[0].config.tokenizer_name" in message and "Hugging Face cache" in message
    with pytest.raises(ConfigError, match=r"configs\[0\]\.config\.max_lenght: unknown key"):
        _multi("lut", {"model_path": default_text_encoder_path(), "max_lenght": 4})
    with pytest.raises(ConfigError, match=r"configs\[0\]\.config\.tokenizer_name: missing required key"):
        _multi("lut", {})


@pytest.mark.skipif(importlib.util.find_spec("g2p_en") is not None, reason="g2p_en is installed here")
def test_phoneme_without_g2p_en_fails_at_build_naming_the_package() -> None:
    with pytest.raises(ConfigError, match=r"m\.json: model\.conditioning\.configs\[0\]\.config: .*g2p_en package"):
        _multi("phoneme", {"max_length": 16})
    with pytest.raises(ConfigError, match=r"config\.max_len: unknown key"):
        _multi("phoneme", {"max_len": 16})


class _StandInG2p:
    """Stand-in for g2p_en.G2p (not installed here): a fixed phoneme inventory and a word -> phonemes map,
    enough to check the id mapping, padding and truncation of PhonemeConditioner."""

    phonemes = ["<pad>", "<unk>", "<s>", "</s>", "AA1", "B", "D", "K", "T"]
    p2idx = {p: i for i, p in enumerate(phonemes)}
    words = {"dog": ["D", "AA1", "K"], "bat": ["B", "AA1", "T"]}

    def __call__(self, text: str) -> list[str]:
        out: list[str] = []
        for i, word in enumerate(text.split()):
            if i:
                out.append(" ")
            out.extend(self.words.get(word.strip("!,."), ["ZH"]) + [c for c in word if c in "!,."])
        return out


def test_phoneme_ids_padding_and_truncation() -> None:
    torch.manual_seed(0)
    g2p = _StandInG2p()
    cond = PhonemeConditioner(g2p, 8, max_length=5)
    assert set(cond.state_dict()) == {"phoneme_embedder.weight"}
    assert cond.phoneme_embedder.num_embeddings == len(g2p.phonemes) + 2
    p = g2p.p2idx
    # "dog bat!" -> D AA1 K ' ' B AA1 T ! -> cut to 5; space -> "_" (not a phoneme) -> 1
    assert cond._ids("dog bat!") == [p["D"] + 2, p["AA1"] + 2, p["K"] + 2, 1, p["B"] + 2]
    emb, mask = cond(["dog bat!", "dog"], "cpu")
    assert emb.shape == (2, 5, 8) and mask.shape == (2, 5) and bool((mask == 1).all())  # upstream: all ones
    torch.testing.assert_close(emb[1, 3:], cond.phoneme_embedder.weight[0].expand(2, 8))  # padding row 0
    torch.testing.assert_close(emb[0, :3], emb[1, :3])  # "dog" embeds the same in both items
    assert (emb[0, 4] - emb[0, 0]).abs().max() > 1e-3
