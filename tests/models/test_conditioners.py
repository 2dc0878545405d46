"""Conditioners: scalar/label embeddings, the MultiConditioner's metadata handling, offline text encoders."""

from __future__ import annotations

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
    bad = {"cond_dim": 16, "configs": [{"id": "x", "type": "clap_text", "config": {}}]}
    with pytest.raises(UnknownTypeError, match=r"configs\[0\]\.type.*known: hf_text, int, list, minilm, number, t5"):
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
