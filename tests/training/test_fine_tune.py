"""Fine-tuning a diffusion model: LoRA/full modes, only trainable parameters optimised, checkpointing, bf16-mixed,
merged and adapter export from a training checkpoint, 8-bit AdamW's missing-package error."""

from __future__ import annotations

import copy
import sys

import lightning.pytorch as pl
import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.adapters import attach_adapter, read_adapter
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.lora import is_lora_key
from stable_audio_ops.models.transformer import ContinuousTransformer
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.fine_tune import export_adapter, fine_tune_model_config, lora_config_of
from stable_audio_ops.training.unwrap import unwrap_checkpoint
from tests.training.test_diffusion_module import CONFIG, _batch

LORA = {"rank": 4, "alpha": 8, "targets": ["self_attn", "cross_attn", "ff"]}


def lora_config(**training) -> dict:
    config = copy.deepcopy(CONFIG)
    config["training"].update({"use_ema": False, "lora": dict(LORA), **training})
    return config


def base_model(config: dict):
    torch.manual_seed(0)
    model = create_model_from_config(config)
    with torch.no_grad():  # non-zero output layers, so adapters and merges are visible in the output
        model.model.model.postprocess_conv.weight.normal_(0, 0.3)
    return model


def optimizer_params(module) -> set[int]:
    optimizer = module.configure_optimizers()[0]
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def test_lora_mode_optimises_only_the_adapters_and_full_mode_everything() -> None:
    config = lora_config()
    module = create_training_module_from_config(config, base_model(config))
    adapters = {id(p) for name, p in module.diffusion.named_parameters() if is_lora_key(name)}
    assert adapters and optimizer_params(module) == adapters

    full = copy.deepcopy(CONFIG)
    module = create_training_module_from_config(full, base_model(full))
    assert optimizer_params(module) == {id(p) for p in module.diffusion.parameters() if p.requires_grad}
    assert not any(is_lora_key(name) for name in module.state_dict())


def test_gradient_checkpointing_recomputes_blocks_with_the_same_gradients() -> None:
    grads = []
    for flag in (False, True):
        config = lora_config(gradient_checkpointing=flag)
        module = create_training_module_from_config(config, base_model(config))
        transformer = next(m for m in module.modules() if isinstance(m, ContinuousTransformer))
        assert transformer.use_checkpointing is flag
        module.train()
        torch.manual_seed(3)
        x = torch.randn(2, 4, 64)
        cond = module.diffusion.conditioner([{"prompt": "flute", "seconds_total": 1.0}] * 2, "cpu")
        module.diffusion(x, torch.full((2,), 0.5), cond=cond, cfg_dropout_prob=0.0).pow(2).mean().backward()
        grads.append({n: p.grad.clone() for n, p in module.diffusion.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def fit_lora(tmp_path, precision: str, steps: int = 3):
    config = lora_config()
    config["training"]["optimizer_configs"]["diffusion"]["optimizer"]["config"]["lr"] = 3e-2
    model = base_model(config)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    module = create_training_module_from_config(config, model)
    batches = [_batch(2) for _ in range(steps)]
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", precision=precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    return config, base, module, ckpt


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_lora_training_moves_only_adapters_in_32_bit_and_bf16_mixed(tmp_path, precision) -> None:
    _, base, module, _ = fit_lora(tmp_path, precision)
    after = module.diffusion.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base.items()), "a frozen base weight changed"
    assert any(k.endswith("lora_B") and v.abs().sum() > 0 for k, v in after.items())
    assert all(torch.isfinite(v).all() for v in after.values())


def test_checkpoint_exports_a_merged_model_and_an_adapter_that_agree(tmp_path) -> None:
    config, _, module, ckpt = fit_lora(tmp_path, "32")
    merged_path = unwrap_checkpoint(config, ckpt, tmp_path / "merged.safetensors")
    merged_state = load_ckpt_state_dict(merged_path)
    assert not any(is_lora_key(k) for k in merged_state)
    merged = create_model_from_config(config)  # config still says lora: the model itself never has adapters
    merged.load_state_dict(merged_state, strict=True)

    adapter_path = export_adapter(config, ckpt, tmp_path / "adapter.safetensors", {"weights_sha256": "x"})
    adapter = read_adapter(adapter_path)
    assert all(is_lora_key(k) for k in adapter.tensors) and adapter.config == lora_config_of(config)
    on_base = base_model(config)
    attach_adapter(on_base, adapter)

    torch.manual_seed(5)
    x, t = torch.randn(2, 4, 64), torch.rand(2)
    meta = [{"prompt": "organ", "seconds_total": 1.0}] * 2
    with torch.no_grad():
        outputs = [m.eval()(x, t, cond=m.conditioner(meta, "cpu"), cfg_dropout_prob=0.0)
                   for m in (module.diffusion, merged, on_base)]
    assert torch.equal(outputs[2], outputs[0])  # base + adapter, unmerged == the trained model
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=0)
    assert not torch.allclose(outputs[0], base_model(config).eval()(x, t, cond=module.diffusion.conditioner(
        meta, "cpu"), cfg_dropout_prob=0.0), atol=1e-4)  # the fine-tune did change the output


def test_fine_tune_settings_errors_name_the_key(tmp_path) -> None:
    config = lora_config()
    config["training"]["lora"]["targets"] = ["attention"]
    with pytest.raises(ConfigError, match=r"training\.lora\.targets\[0\].*unknown LoRA target"):
        create_training_module_from_config(config, base_model(lora_config()))
    full = copy.deepcopy(CONFIG)
    with pytest.raises(ConfigError, match="training.lora"):
        export_adapter(full, tmp_path / "x.ckpt", tmp_path / "a.safetensors")


def test_adamw_8bit_without_bitsandbytes_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as when it is not installed
    config = lora_config()
    config["training"]["optimizer_configs"]["diffusion"]["optimizer"] = {"type": "AdamW8bit",
                                                                         "config": {"lr": 1e-4}}
    module = create_training_module_from_config(config, base_model(config))
    with pytest.raises(ConfigError, match=r"optimizer\.type.*pip install bitsandbytes"):
        module.configure_optimizers()


def test_fine_tune_config_keeps_the_base_architecture_and_sets_the_training() -> None:
    base = copy.deepcopy(CONFIG)
    base["training"]["optimizer_configs"]["diffusion"]["scheduler"] = {"type": "InverseLR", "config": {}}
    base["model"]["conditioning"]["configs"].append({"id": "text", "type": "t5", "config": {"t5_model_name": "t5-base"}})
    optimizer = {"type": "AdamW8bit", "config": {"lr": 1e-4}}
    lora = fine_tune_model_config(base, mode="lora", lora={"rank": 8}, optimizer=optimizer, sample_size=2048,
                                  use_ema=False, gradient_checkpointing=True, text_encoder_path="/models/t5-base")
    assert lora["model"]["diffusion"] == base["model"]["diffusion"] and lora["sample_size"] == 2048
    training = lora["training"]
    assert training["optimizer_configs"] == {"diffusion": {"optimizer": optimizer}}  # the base's scheduler is gone
    assert training["lora"] == {"rank": 8, "alpha": 8.0, "dropout": 0.0, "targets": ["self_attn", "cross_attn", "ff"]}
    assert training["use_ema"] is False and training["gradient_checkpointing"] is True
    assert training["demo"] == base["training"]["demo"] and training["cfg_dropout_prob"] == 0.1
    assert lora["model"]["conditioning"]["configs"][-1]["config"]["model_path"] == "/models/t5-base"
    full = fine_tune_model_config(base, mode="full", lora={"rank": 8}, optimizer=optimizer, sample_size=2048,
                                  use_ema=True, gradient_checkpointing=False)
    assert "lora" not in full["training"] and lora_config_of(full) is None
    with pytest.raises(ConfigError, match="unknown value 'adapter'; known: lora, full"):
        fine_tune_model_config(base, mode="adapter", lora=None, optimizer=optimizer, sample_size=2048,
                               use_ema=False, gradient_checkpointing=False)
