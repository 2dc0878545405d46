"""model_type "clap": built from a 0.0.20-style config, upstream state-dict names, strict round trip, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.checkpoints import (
    load_ckpt_state_dict,
    load_state_dict_checked,
    save_model_checkpoint,
)
from stable_audio_ops.models.clap import CLAP
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import load_local_model
from tests.models.clap_fixtures import save_tiny_roberta, tiny_clap_config, tone_batch


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    return save_tiny_roberta(tmp_path_factory.mktemp("roberta"))


def test_clap_has_upstream_key_names_and_round_trips_strictly(roberta, tmp_path):
    config = tiny_clap_config(roberta)
    torch.manual_seed(0)
    model = create_model_from_config(config)
    assert isinstance(model, CLAP)
    keys = set(model.state_dict())
    # 0.0.20's names: projections are Linear-ReLU-Linear, the temperature is logit_scale_a, RoBERTa under .model
    for key in ("logit_scale_a", "audio_branch.cls_embedding", "audio_branch.transformer.project_in.weight",
                "audio_branch.transformer.layers.0.self_attn.to_qkv.weight",
                "text_branch.model.embeddings.word_embeddings.weight", "text_branch.model.pooler.dense.weight",
                "text_projection.0.weight", "text_projection.2.bias", "audio_projection.0.weight",
                "audio_projection.2.bias"):
        assert key in keys, key
    assert not any(k.startswith(("text_projection.1", "audio_projection.1")) for k in keys)  # ReLU has none
    assert model.logit_scale_a.item() == pytest.approx(torch.log(torch.tensor(1 / 0.07)).item())

    path = save_model_checkpoint(model.state_dict(), tmp_path / "clap.safetensors", model_config=config)
    torch.manual_seed(1)
    other = create_model_from_config(copy.deepcopy(config))
    load_state_dict_checked(other, load_ckpt_state_dict(path), strict=True)
    from_file = load_local_model(path).model  # built on meta, the file's tensors assigned
    audio, metadata = tone_batch()
    prompts = [m["prompt"] for m in metadata]
    model.eval(), other.eval()
    with torch.no_grad():
        latents = model.get_audio_features(audio)
        assert latents.shape == (8, 128, 16)  # 128-sample patches of 2048 samples
        a1, a2 = model.get_audio_embedding(latents), other.get_audio_embedding(latents)
        t1, t2 = model.get_text_embedding(prompts), other.get_text_embedding(prompts)
        a3, t3 = from_file.get_audio_embedding(latents), from_file.get_text_embedding(prompts)
    assert torch.equal(a1, a2) and torch.equal(t1, t2) and torch.equal(a1, a3) and torch.equal(t1, t3)
    assert a1.shape == t1.shape == (8, 32)
    assert torch.allclose(a1.norm(dim=-1), torch.ones(8)) and torch.allclose(t1.norm(dim=-1), torch.ones(8))


def test_avg_pool_and_noise_config_branch(roberta):
    # (branch outputs not zero-initialised, so the untrained blocks already depend on the noise level)
    config = tiny_clap_config(roberta, embed_type="avg_pool", noise_config={"embed_dim": 16},
                              zero_init_branch_outputs=False)
    model = create_model_from_config(config).eval()
    keys = set(model.state_dict())
    assert {"audio_branch.noise_features.weight", "audio_branch.to_noise_embed.weight"} <= keys
    assert "audio_branch.cls_embedding" not in keys
    latents = model.get_audio_features(tone_batch()[0][:2])
    with torch.no_grad():
        clean = model.get_audio_embedding(latents)
        assert torch.equal(clean, model.get_audio_embedding(latents, noise_levels=torch.zeros(2)))
        assert not torch.allclose(clean, model.get_audio_embedding(latents, noise_levels=torch.full((2,), 0.7)))
        # the mask restricts the mean pooling to the real frames
        half = torch.arange(16)[None].expand(2, -1) < 8
        masked = model.get_audio_embedding(latents, mask=half)
        assert not torch.allclose(masked, clean)


@pytest.mark.parametrize(("edit", "where"), [
    (lambda m: m["model"].update(model_objective="siglip"), "model.model_objective"),
    (lambda m: m["model"]["audio"]["model"].update(type="htsat"), "model.audio.model.type"),
    (lambda m: m["model"]["text"]["model"].update(type="t5"), "model.text.model.type"),
    (lambda m: m["model"].update(joint_dim=4), "model.joint_dim"),
    (lambda m: m["model"]["audio"]["model"]["config"].update(embed_type="max_pool"),
     "model.audio.model.config.embed_type"),
])
def test_bad_config_names_the_key(roberta, edit, where):
    config = tiny_clap_config(roberta)
    edit(config)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        create_model_from_config(config, source="clap.json")


def test_missing_text_encoder_is_a_clear_error(tmp_path):
    config = tiny_clap_config(tmp_path / "no-such-roberta")
    with pytest.raises(ConfigError, match=r"model\.text\.model\.config\.name.*local files"):
        create_model_from_config(config, source="clap.json")
