"""Conditioners: scalar/label embeddings, the MultiConditioner's metadata handling, offline text encoders."""

from __future__ import annotations

import math

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.models.conditioners import (
    HFTextConditioner,
    IntConditioner,
    ListConditioner,
    MultiConditioner,
    NumberConditioner,
    T5Conditioner,
    TextEncoderUnavailableError,
    create_multi_conditioner_from_conditioning_config,
)


def test_number_conditioner_clamps_normalises_and_keys_match_upstream() -> None:
    cond = NumberConditioner(16, min_val=0, max_val=512)
    assert set(cond.state_dict()) == {"embedder.embedding.0.weights", "embedder.embedding.1.weight",
                                      "embedder.embedding.1.bias"}
    emb, mask = cond([512, 600.0, 0, -5], "cpu")
    assert emb.shape == (4, 1, 16) and mask.shape == (4, 1) and bool((mask == 1).all())
    torch.testing.assert_close(emb[0], emb[1])  # clamped to max
    torch.testing.assert_close(emb[2], emb[3])  # clamped to min
    # the raw (normalised) value enters the Linear next to its Fourier features
    lin = cond.embedder.embedding[1]
    expected = lin(torch.cat([torch.zeros(1), torch.zeros(128), torch.ones(128)]))
    torch.testing.assert_close(emb[2, 0], expected)


def test_int_conditioner_indexes_by_clamped_value_like_upstream() -> None:
    cond = IntConditioner(8, min_val=0, max_val=10)
    emb, _ = cond([3, 99], "cpu")
    torch.testing.assert_close(emb[0, 0], cond.int_embedder.weight[3])
    torch.testing.assert_close(emb[1, 0], cond.int_embedder.weight[10])
    shifted = IntConditioner(8, min_val=5, max_val=10)  # 6 rows, indexed by the raw value 5..10
    with pytest.raises(ValueError, match="min_val=5 is not"):
        shifted([10], "cpu")


def test_list_conditioner_maps_unknown_options_to_row_zero() -> None:
    cond = ListConditioner(8, options=["ambient", "rock"])
    emb, _ = cond(["rock", "polka"], "cpu")
    torch.testing.assert_close(emb[0, 0], cond.embedder.weight[2])
    torch.testing.assert_close(emb[1, 0], cond.embedder.weight[0])


def _multi() -> MultiConditioner:
    return MultiConditioner({"seconds_total": NumberConditioner(8, 0, 100), "genre": ListConditioner(8, ["a", "b"])},
                            default_keys={"genre": "style"}, pre_encoded_keys=["genre"])


def test_multi_conditioner_default_keys_unwrapping_and_pre_encoded() -> None:
    multi = MultiConditioner({"seconds_total": NumberConditioner(8, 0, 100), "genre": ListConditioner(8, ["a", "b"])},
                             default_keys={"genre": "style"})
    out = multi([{"seconds_total": [30], "style": "b"}, {"seconds_total": (50,), "genre": ["a"]}], "cpu")
    assert set(out) == {"seconds_total", "genre"}
    torch.testing.assert_close(out["genre"][0][0, 0], multi.conditioners["genre"].embedder.weight[2])
    torch.testing.assert_close(out["genre"][0][1, 0], multi.conditioners["genre"].embedder.weight[1])
    pre = _multi()
    tensors = [torch.randn(2, 8), torch.randn(2, 8)]
    out = pre([{"seconds_total": 1, "genre": tensors[0]}, {"seconds_total": 2, "style": [tensors[1]]}], "cpu")
    torch.testing.assert_close(out["genre"][0], torch.stack(tensors))
    assert out["genre"][1] is None


def test_multi_conditioner_missing_key_names_conditioner_and_available_keys() -> None:
    with pytest.raises(ValueError, match=r"conditioner 'seconds_total'.*batch item 1 has only: prompt, seconds_start"):
        _multi()([{"seconds_total": 1, "genre": torch.zeros(2)}, {"prompt": "x", "seconds_start": 0}], "cpu")


def test_factory_uses_cond_dim_per_conditioner_override_and_lists_known_types() -> None:
    cfg = {"cond_dim": 16, "configs": [
        {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
        {"id": "bpm", "type": "int", "config": {"max_val": 200, "output_dim": 4}},
    ]}
    multi = create_multi_conditioner_from_conditioning_config(cfg)
    assert multi.conditioners["seconds_total"].output_dim == 16 and multi.conditioners["bpm"].output_dim == 4
    bad = {"cond_dim": 16, "configs": [{"id": "x", "type": "t5_xl", "config": {}}]}
    with pytest.raises(UnknownTypeError, match=r"configs\[0\]\.type.*'t5_xl'.*known: (\w+, )*hf_text, int, list, (\w+, )*"
                                              r"minilm, number, (\w+, )*t5(, \w+)*$"):
        create_multi_conditioner_from_conditioning_config(bad, ConfigNode(bad, "m.json", "model.conditioning"))
    dup = {"cond_dim": 8, "configs": [{"id": "a", "type": "number", "config": {}}] * 2}
    with pytest.raises(ConfigError, match="duplicate conditioner id 'a'"):
        create_multi_conditioner_from_conditioning_config(dup)
    typo = {"cond_dim": 8, "configs": [{"id": "a", "type": "number", "config": {"max": 3}}]}
    with pytest.raises(ConfigError, match=r"configs\[0\]\.config\.max: unknown key"):
        create_multi_conditioner_from_conditioning_config(typo)


@pytest.fixture(scope="module")
def minilm():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        yield HFTextConditioner(32, max_length=16)
    finally:
        mp.undo()


def test_minilm_conditioner_offline_tokens_mask_and_padding(minilm) -> None:
    captions = ["a soft piano note", "a bright trumpet blast with a long hall reverb tail", "a soft piano note"]
    emb, mask = minilm(captions, "cpu")
    assert emb.shape == (3, 16, 32) and mask.shape == (3, 16) and mask.dtype == torch.bool
    lengths = mask.sum(dim=1)
    assert lengths[0] < lengths[1] <= 16 and bool(mask[:, 0].all())
    assert emb[0, int(lengths[0]):].abs().max() == 0  # pad tokens zeroed
    assert emb[0, : int(lengths[0])].abs().amax(dim=-1).min() > 0
    torch.testing.assert_close(emb[0], emb[2])  # same caption, same tokens (served from the cache)
    assert (emb[0] - emb[1]).abs().max() > 1e-2
    assert len(minilm._cache) == 2


def test_minilm_conditioner_is_frozen_and_only_proj_out_is_saved(minilm) -> None:
    assert set(minilm.state_dict()) == {"proj_out.weight", "proj_out.bias"}  # 384 -> 32 projection
    assert minilm.dim == 384
    multi = create_multi_conditioner_from_conditioning_config(
        {"cond_dim": 384, "configs": [{"id": "prompt", "type": "minilm", "config": {"max_length": 8}}]})
    assert set(multi.state_dict()) == set()  # no encoder keys in checkpoints, like upstream's frozen T5
    emb, mask = multi([{"prompt": "a cello"}], "cpu")["prompt"]
    assert emb.shape == (1, 8, 384) and not emb.requires_grad


def test_text_conditioner_rejects_non_strings(minilm) -> None:
    with pytest.raises(TypeError, match="item 1 is int"):
        minilm(["ok", 3], "cpu")


def test_t5_without_local_weights_explains_how_to_provide_them(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(TextEncoderUnavailableError) as info:
        T5Conditioner(768, t5_model_name="t5-base")
    message = str(info.value)
    assert "t5_model_name" in message and "Hugging Face cache" in message and "local folder" in message
    cfg = {"cond_dim": 768, "configs": [{"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-tiny"}}]}
    with pytest.raises(ConfigError, match=r"m\.json: model\.conditioning\.configs\[0\]\.config\.t5_model_name"):
        create_multi_conditioner_from_conditioning_config(cfg, ConfigNode(cfg, "m.json", "model.conditioning"))


# --- keys stable-audio-tools 0.0.20 added (t5: model_path, padding_mode; number: fourier_features_type) ---

@pytest.fixture(scope="module")
def tiny_t5_folder(tmp_path_factory):
    """A random 16-wide T5 encoder saved like a local model copy (MiniLM's tokenizer: no download)."""
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    from stable_audio_ops.models.conditioners import default_text_encoder_path

    folder = tmp_path_factory.mktemp("t5-local")
    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
    torch.manual_seed(0)
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    T5EncoderModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _t5(config: dict, monkeypatch, tmp_path) -> MultiConditioner:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # t5-base itself is not there
    cfg = {"cond_dim": 8, "configs": [{"id": "prompt", "type": "t5", "config": config}]}
    return create_multi_conditioner_from_conditioning_config(cfg, ConfigNode(cfg, "m.json", "model.conditioning"))


def test_t5_model_path_wins_over_t5_model_name(tiny_t5_folder, monkeypatch, tmp_path) -> None:
    from transformers import AutoTokenizer, T5EncoderModel

    # t5_model_name defaults to t5-base, which is not in this HF cache: the weights come from model_path
    multi = _t5({"model_path": str(tiny_t5_folder), "max_length": 12}, monkeypatch, tmp_path)
    conditioner = multi.conditioners["prompt"]
    assert conditioner.dim == 16  # the model in model_path, not t5-base's 768
    emb, mask = multi([{"prompt": "a warm cello"}], "cpu")["prompt"]
    tokens = AutoTokenizer.from_pretrained(tiny_t5_folder)(["a warm cello"], max_length=12, padding="max_length",
                                                           truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = T5EncoderModel.from_pretrained(tiny_t5_folder)(**tokens)["last_hidden_state"]
    expected = conditioner.proj_out(hidden) * tokens["attention_mask"][..., None]
    torch.testing.assert_close(emb, expected)
    assert mask.tolist() == tokens["attention_mask"].bool().tolist()


def test_t5_model_path_that_contradicts_t5_model_name_or_is_missing_is_a_config_error(
        tiny_t5_folder, monkeypatch, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"configs\[0\]\.config\.model_path: .* 16 wide, but t5_model_name "
                                          r"'t5-small' is 512 wide"):
        _t5({"t5_model_name": "t5-small", "model_path": str(tiny_t5_folder)}, monkeypatch, tmp_path)
    with pytest.raises(TextEncoderUnavailableError, match=r"configs\[0\]\.config\.model_path: .*not a folder"):
        _t5({"model_path": str(tmp_path / "nowhere")}, monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match=r"configs\[0\]\.config\.model_name: unknown key"):
        _t5({"model_name": "t5-base"}, monkeypatch, tmp_path)  # unknown keys are still errors


def test_t5_padding_modes(tiny_t5_folder, monkeypatch, tmp_path) -> None:
    outputs = {}
    for mode in ("zero", "none", "learned"):
        torch.manual_seed(0)  # the same proj_out for each mode
        multi = _t5({"model_path": str(tiny_t5_folder), "max_length": 12, "padding_mode": mode},
                    monkeypatch, tmp_path)
        outputs[mode] = multi([{"prompt": "a harp"}], "cpu")["prompt"]
        keys = set(multi.state_dict())
        assert ("conditioners.prompt.padding_embedding" in keys) == (mode == "learned")  # upstream's key
    (zero, mask), (none, _), (learned, _) = outputs["zero"], outputs["none"], outputs["learned"]
    pad = ~mask[0]
    assert pad.any() and zero[0, pad].abs().max() == 0 and none[0, pad].abs().max() > 0
    torch.testing.assert_close(none[0, ~pad], zero[0, ~pad])
    assert torch.equal(learned[0, pad], learned[0, pad][:1].expand(int(pad.sum()), -1))  # one learned vector
    with pytest.raises(UnknownTypeError, match=r"config\.padding_mode: unknown value 'mean'; known: zero, none"):
        _t5({"model_path": str(tiny_t5_folder), "padding_mode": "mean"}, monkeypatch, tmp_path)


def test_number_conditioner_expo_fourier_features_like_upstream() -> None:
    cfg = {"cond_dim": 8, "configs": [{"id": "s", "type": "number",
                                       "config": {"min_val": 0, "max_val": 10, "fourier_features_type": "expo"}}]}
    multi = create_multi_conditioner_from_conditioning_config(cfg)
    # no learned frequencies: only the Linear over the 256 fixed features (upstream's state-dict keys)
    assert set(multi.state_dict()) == {"conditioners.s.embedder.embedding.1.weight",
                                       "conditioners.s.embedder.embedding.1.bias"}
    linear = multi.conditioners["s"].embedder.embedding[1]
    emb, _ = multi([{"s": 2.5}], "cpu")["s"]
    freqs = torch.exp(torch.linspace(0, 1, 128) * (math.log(10000.0) - math.log(0.5)) + math.log(0.5))
    args = 0.25 * freqs * 2 * math.pi
    torch.testing.assert_close(emb[0, 0], linear(torch.cat([args.cos(), args.sin()])))
    bad = {"cond_dim": 8, "configs": [{"id": "s", "type": "number", "config": {"fourier_features_type": "sine"}}]}
    with pytest.raises(UnknownTypeError, match=r"fourier_features_type: unknown value 'sine'; known: learned, expo"):
        create_multi_conditioner_from_conditioning_config(bad)
