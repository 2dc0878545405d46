"""CLAP training: the loss maths, the retrieval metric, config errors, and a short run that learns to retrieve."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.clap import CLAPTrainingModule, resize_padding_mask
from stable_audio_ops.training.clap_demos import CLAPRetrievalCallback
from stable_audio_ops.training.clap_losses import contrastive_loss, info_nce, retrieval_metrics
from stable_audio_ops.training.factory import create_training_module_from_config
from tests.models.clap_fixtures import save_tiny_roberta, tiny_clap_config, tone_batch


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    return save_tiny_roberta(tmp_path_factory.mktemp("roberta"))


def test_contrastive_loss_is_symmetric_info_nce():
    torch.manual_seed(0)
    a, t = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(14.0)
    logits = scale * a @ t.T
    expected_a2t = -torch.log_softmax(logits, dim=1).diagonal().mean()
    expected_t2a = -torch.log_softmax(logits.T, dim=1).diagonal().mean()
    assert info_nce(a, t, scale) == pytest.approx(float(expected_a2t), rel=1e-5)
    assert contrastive_loss(a, t, scale) == pytest.approx(float(expected_a2t + expected_t2a) / 2, rel=1e-5)
    # matched pairs give a lower loss than shuffled ones
    assert contrastive_loss(a, a, scale) < contrastive_loss(a, a.roll(1, 0), scale)


def test_retrieval_metrics_ranks():
    e = torch.eye(4)
    perfect = retrieval_metrics(e, e)
    assert perfect["text_to_audio_R@1"] == perfect["audio_to_text_R@1"] == 1.0
    assert perfect["text_to_audio_mean_rank"] == 1.0
    # captions pointing at the wrong item: text i matches audio i+1
    shifted = retrieval_metrics(e, e.roll(1, 0))
    assert shifted["text_to_audio_R@1"] == 0.0 and shifted["text_to_audio_mean_rank"] == 4.0
    # collapsed embeddings (all equal) must not look perfect: ties count against the right item
    same = retrieval_metrics(torch.ones(4, 2), torch.ones(4, 2))
    assert same["text_to_audio_R@1"] == 0.0 and same["text_to_audio_R@5"] == 1.0


def test_padding_mask_resize_rounds_up():
    mask = torch.tensor([[1.0] * 300 + [0.0] * 212, [1.0] * 512])
    frames = resize_padding_mask(mask, 4)  # 128 samples per frame: 300 real samples touch 3 frames
    assert frames.tolist() == [[True, True, True, False], [True, True, True, True]]


def _embed(module: CLAPTrainingModule, batch) -> dict[str, float]:
    module.eval()
    with torch.no_grad():
        audio, text = module.embeddings(batch, train=False)
    module.train()
    return retrieval_metrics(audio, text, module.model.logit_scale_a.detach().exp())


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_short_training_run_learns_text_to_audio_retrieval(roberta):
    """8 sine tones (110-1244 Hz) captioned with their pitch: 200 steps raise text->audio R@1 from chance
    (1/8) to at least 6/8, through the real training step, loss terms and optimizer config."""
    torch.manual_seed(0)
    config = tiny_clap_config(roberta, lr=3e-3)
    module = create_training_module_from_config(config, create_model_from_config(config))
    optimizer = module.configure_optimizers()[0]
    batch = tone_batch(phase_seed=0)
    before = _embed(module, batch)["text_to_audio_R@1"]
    scale_before = module.model.logit_scale_a.item()
    for step in range(200):
        loss = module.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _embed(module, batch)
    assert before <= 0.25
    assert after["text_to_audio_R@1"] >= 0.75, after
    assert after["audio_to_text_R@1"] >= 0.5, after
    assert module.model.logit_scale_a.item() != scale_before  # the temperature is learned


def test_retrieval_callback_measures_the_held_batch(roberta):
    config = tiny_clap_config(roberta)
    module = create_training_module_from_config(config, create_model_from_config(config))
    audio, metadata = tone_batch()
    callback = CLAPRetrievalCallback(audio, metadata, demo_every=5)
    assert [s for s in range(1, 13) if callback.due(s)] == [1, 6, 11]
    assert callback.metrics(module) == _embed(module, (audio, metadata))


@pytest.mark.parametrize(("training", "where"), [
    ({"learning_rate": 1e-3, "htsat_dataset": True}, r"training\.htsat_dataset"),
    ({"learning_rate": 1e-3, "loss_config": {"contrastve": 1.0}}, r"training\.loss_config\.contrastve"),
    ({"learning_rate": 1e-3, "loss_config": {"uniformity": -1}}, r"training\.loss_config\.uniformity"),
    ({}, r"training\.learning_rate"),
    ({"optimizer_configs": {"diffusion": {}}}, r"training\.optimizer_configs\.model"),
])
def test_training_config_errors_name_the_key(roberta, training, where):
    config = {**tiny_clap_config(roberta), "training": training}
    with pytest.raises(ConfigError, match=where):
        create_training_module_from_config(config, create_model_from_config(config), source="clap.json")


def test_optimizer_configs_model_with_scheduler(roberta):
    config = tiny_clap_config(roberta)
    config["training"] = {"optimizer_configs": {"model": {
        "optimizer": {"type": "AdamW", "config": {"lr": 1e-4, "weight_decay": 0.01}},
        "scheduler": {"type": "InverseLR", "config": {"inv_gamma": 100, "power": 0.5}}}}}
    module = create_training_module_from_config(config, create_model_from_config(config))
    optimizers, schedulers = module.configure_optimizers()
    assert type(optimizers[0]).__name__ == "AdamW" and schedulers[0]["interval"] == "step"
    n_params = sum(p.numel() for p in module.model.parameters())
    assert sum(p.numel() for g in optimizers[0].param_groups for p in g["params"]) == n_params


def test_missing_prompt_is_a_clear_error(roberta):
    config = tiny_clap_config(roberta)
    module = create_training_module_from_config(config, create_model_from_config(config))
    audio, metadata = tone_batch()
    metadata[3] = {"padding_mask": metadata[3]["padding_mask"], "path": "x.wav"}
    with pytest.raises(ValueError, match=r"batch item 3 has none.*custom_metadata_module"):
        module.training_step((audio, metadata), 0)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_noise_augmentation_with_noise_config(roberta):
    """0.0.20's augmentation: Sobol noise levels, about half of them set to 0 (those latents stay clean)."""
    config = tiny_clap_config(roberta, noise_config={"embed_dim": 16})
    module = create_training_module_from_config(config, create_model_from_config(config))
    torch.manual_seed(0)
    latents = torch.randn(64, 4, 8)
    noised, levels = module.noised(latents)
    clean = levels == 0
    assert 16 <= int(clean.sum()) <= 48 and bool(((levels >= 0) & (levels < 1)).all())
    assert torch.equal(noised[clean], latents[clean]) and not torch.allclose(noised[~clean], latents[~clean])
    loss = module.training_step(tone_batch(), 0)
    loss.backward()
    assert module.model.audio_branch.to_noise_embed.weight.grad is not None
