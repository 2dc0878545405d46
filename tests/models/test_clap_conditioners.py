"""sat_clap_text / sat_clap_audio conditioners over an unwrapped clap checkpoint, and the LAION clap_* types."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.conditioners import create_multi_conditioner_from_conditioning_config
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import load_local_model
from tests.models.clap_fixtures import save_tiny_roberta, tiny_clap_config, tone_batch

REPO = Path(__file__).resolve().parents[2]
PROMPTS = ["a sine tone at 110 hertz", "a sine tone at 440 hertz", "a sine tone at 880 hertz"]


@pytest.fixture(scope="module")
def clap(tmp_path_factory):
    """A clap model with random weights (non-zero branch outputs) and its unwrapped checkpoint."""
    folder = tmp_path_factory.mktemp("clap")
    config = tiny_clap_config(save_tiny_roberta(folder / "roberta"))
    torch.manual_seed(0)
    model = create_model_from_config(config).eval()
    with torch.no_grad():  # as if trained: 0.0.20 zero-initialises the transformer's branch outputs
        for param in model.parameters():
            if not param.any():
                param.normal_(0, 0.1)
    path = save_model_checkpoint(model.state_dict(), folder / "clap.safetensors", model_config=config)
    return model, config, path


def _conditioning(cond_type: str, clap_config: dict, ckpt: Path | None, **extra) -> dict:
    cfg = {"model": clap_config["model"], "sample_rate": clap_config["sample_rate"], **extra}
    if ckpt is not None:
        cfg["ckpt_path"] = str(ckpt)
    return {"cond_dim": 32, "configs": [{"id": "prompt", "type": cond_type, "config": cfg}]}


def _build(conditioning: dict, pretransform=None):
    return create_multi_conditioner_from_conditioning_config(
        conditioning, ConfigNode(conditioning, "model.json", "model.conditioning"), pretransform=pretransform)


def test_sat_clap_text_gives_the_models_text_embeddings(clap):
    model, config, path = clap
    multi = _build(_conditioning("sat_clap_text", config, path))
    conditioner = multi.conditioners["prompt"]
    embeddings, mask = conditioner(PROMPTS, "cpu")
    with torch.no_grad():
        expected = model.get_text_embedding(PROMPTS)
    assert embeddings.shape == (3, 1, 32) and mask.shape == (3, 1)
    assert torch.allclose(embeddings[:, 0], expected, atol=1e-6)
    assert torch.cdist(embeddings[:, 0], embeddings[:, 0]).triu(1).max() > 0.05  # different captions differ
    # upstream layout: the frozen CLAP is a submodule without its audio side; no proj_out at equal widths
    keys = set(multi.state_dict())
    assert "conditioners.prompt.model.text_branch.model.pooler.dense.weight" in keys
    assert not any(".audio_branch." in k or ".pretransform." in k for k in keys)
    assert not any(k.startswith("conditioners.prompt.proj_out") for k in keys)
    multi.train()
    assert not conditioner.model.training  # the frozen CLAP stays in eval mode (no RoBERTa dropout)
    assert torch.equal(conditioner(PROMPTS, "cpu")[0], embeddings)


def test_sat_clap_text_features_and_projection(clap):
    model, config, path = clap
    conditioning = _conditioning("sat_clap_text", config, path, use_text_features=True, project_out=True)
    conditioning["cond_dim"] = 16
    conditioner = _build(conditioning).conditioners["prompt"]
    features, mask = conditioner(PROMPTS[:2], "cpu")
    assert features.shape == (2, 12, 16) and mask.dtype == torch.bool and mask.shape == (2, 12)
    with torch.no_grad():
        hidden, _ = model.text_branch.get_text_features(PROMPTS[:2], layer_ix=-2)
        assert torch.allclose(features, conditioner.proj_out(hidden), atol=1e-6)


def test_sat_clap_audio_embeds_latents_like_the_model(clap):
    model, config, path = clap
    multi = _build(_conditioning("sat_clap_audio", config, path))
    audio, _ = tone_batch()
    with torch.no_grad():
        latents = model.get_audio_features(audio[:4])
        expected = model.get_audio_embedding(latents)
    embeddings, mask = multi.conditioners["prompt"](list(latents), "cpu")
    assert embeddings.shape == (4, 1, 32) and mask.shape == (4, 1)
    assert torch.allclose(embeddings[:, 0], expected, atol=1e-6)
    assert torch.cdist(expected, expected).triu(1).max() > 0.05
    assert not any(".text_branch." in k for k in multi.state_dict())


def test_use_model_pretransform_shares_the_models_pretransform(clap):
    model, config, path = clap
    shared = copy.deepcopy(model.pretransform)
    multi = _build(_conditioning("sat_clap_audio", config, path, use_model_pretransform=True), pretransform=shared)
    assert multi.conditioners["prompt"].model.pretransform is shared


def test_checkpoint_that_does_not_fit_is_an_error(clap, tmp_path):
    model, config, path = clap
    other = copy.deepcopy(config)
    other["model"]["joint_embed_dim"] = 16
    with pytest.raises(CheckpointError, match=r"(?s)ckpt_path.*text_projection"):
        _build(_conditioning("sat_clap_text", other, path))
    with pytest.raises(ConfigError, match=r"model\.conditioning\.configs\[0\]\.config\.sample_rate"):
        bad = _conditioning("sat_clap_audio", config, path)
        del bad["configs"][0]["config"]["sample_rate"]
        _build(bad)


def test_diffusion_model_with_a_sat_clap_text_conditioner_round_trips(clap, tmp_path):
    """A DiT conditioned on CLAP text embeddings: its checkpoint holds the CLAP (upstream's keys) and loads
    strictly, also through load_local_model (built on meta, then the file's tensors assigned)."""
    model, config, path = clap
    dit = json.loads((REPO / "tests" / "fixtures" / "configs" / "dit_tiny.json").read_text())
    dit["model"]["conditioning"] = _conditioning("sat_clap_text", config, path)
    dit["model"]["diffusion"]["cross_attention_cond_ids"] = ["prompt"]
    dit["model"]["diffusion"]["global_cond_ids"] = []
    dit["model"]["diffusion"]["config"].pop("global_cond_dim")
    diffusion = create_model_from_config(dit)
    state = diffusion.state_dict()
    assert "conditioner.conditioners.prompt.model.logit_scale_a" in state
    saved = save_model_checkpoint(state, tmp_path / "dit.safetensors", model_config=dit)
    again = load_local_model(saved).model
    cond = again.conditioner([{"prompt": p} for p in PROMPTS[:2]], "cpu")
    with torch.no_grad():
        assert torch.allclose(cond["prompt"][0][:, 0], model.get_text_embedding(PROMPTS[:2]), atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("laion_clap") is not None, reason="laion_clap is installed")
@pytest.mark.parametrize("cond_type", ["clap_text", "clap_audio"])
def test_laion_clap_types_need_the_package(cond_type):
    conditioning = {"cond_dim": 32, "configs": [{"id": "prompt", "type": cond_type,
                                                 "config": {"clap_ckpt_path": "/models/clap.ckpt"}}]}
    with pytest.raises(ConfigError, match=r"configs\[0\]\.config\.clap_ckpt_path.*'laion_clap'.*pip install laion-clap"):
        _build(conditioning)
