"""Optimizers and schedulers from ``{type, config}`` blocks (upstream semantics, readable errors)."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.training.optim import (
    InverseLR,
    configure_optimizer,
    create_optimizer_from_config,
    create_scheduler_from_config,
    resolve_optimizer_configs,
)


def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


def _lrs(optimizer, scheduler, steps):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_inverse_lr_follows_upstream_formula():
    base, inv_gamma, power, warmup, final = 1e-3, 10.0, 0.5, 0.9, 0.0
    opt = create_optimizer_from_config({"type": "AdamW", "config": {"lr": base}}, _params())
    sched = create_scheduler_from_config(
        {"type": "InverseLR", "config": {"inv_gamma": inv_gamma, "power": power, "warmup": warmup}}, opt
    )
    got = _lrs(opt, sched, 50)
    expected = [(1 - warmup ** (s + 1)) * max(final, base * (1 + s / inv_gamma) ** -power) for s in range(50)]
    assert got == pytest.approx(expected, rel=1e-12)


def test_inverse_lr_never_goes_below_final_lr_after_warmup():
    opt = torch.optim.SGD(_params(), lr=1.0)
    sched = InverseLR(opt, inv_gamma=1.0, power=2.0, warmup=0.0, final_lr=0.25)
    lrs = _lrs(opt, sched, 20)
    assert lrs[0] == 1.0
    assert min(lrs) == pytest.approx(0.25)


def test_inverse_lr_rejects_bad_warmup():
    with pytest.raises(ValueError, match="warmup"):
        InverseLR(torch.optim.SGD(_params(), lr=1.0), warmup=1.0)


def test_any_torch_optimizer_and_scheduler_by_name():
    opt = create_optimizer_from_config({"type": "SGD", "config": {"lr": 0.5, "momentum": 0.9}}, _params())
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    sched = create_scheduler_from_config({"type": "StepLR", "config": {"step_size": 2, "gamma": 0.5}}, opt)
    assert _lrs(opt, sched, 5) == [0.5, 0.5, 0.25, 0.25, 0.125]


def test_betas_from_json_lists_become_tuples():
    opt = create_optimizer_from_config({"type": "AdamW", "config": {"lr": 1e-4, "betas": [0.8, 0.99]}}, _params())
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)


def test_unknown_names_list_what_exists():
    with pytest.raises(UnknownTypeError, match="AdamW") as err:
        create_optimizer_from_config({"type": "Adamw", "config": {}}, _params())
    assert "'Adamw'" in str(err.value)
    opt = torch.optim.SGD(_params(), lr=1.0)
    with pytest.raises(UnknownTypeError, match="InverseLR"):
        create_scheduler_from_config({"type": "Cosine", "config": {}}, opt)


def test_bad_arguments_name_the_config_path():
    with pytest.raises(ConfigError, match="optimizer.config"):
        create_optimizer_from_config({"type": "AdamW", "config": {"learning_rate": 1e-3}}, _params())


def test_resolve_optimizer_configs_names_the_missing_key_and_warns_when_lr_is_ignored(caplog):
    def default(lr: float) -> dict:
        return {"lm": {"optimizer": {"type": "AdamW", "config": {"lr": lr}}}}

    with pytest.raises(ConfigError, match=r"training\.learning_rate.*optimizer_configs\.lm"):
        resolve_optimizer_configs(None, None, default, "lm", "model.json")
    with pytest.raises(ConfigError, match=r"optimizer_configs\.lm"):
        resolve_optimizer_configs({"diffusion": {"optimizer": {"type": "Adam"}}}, None, default, "lm", "model.json")

    node = resolve_optimizer_configs(None, 3e-4, default, "lm")
    param = torch.nn.Parameter(torch.zeros(2))
    [optimizer] = configure_optimizer(node.child("lm"), [param])
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["lr"] == 3e-4

    given = {"lm": {"optimizer": {"type": "Adam", "config": {"lr": 1e-3}},
                    "scheduler": {"type": "InverseLR", "config": {"inv_gamma": 100, "power": 0.5}}}}
    with caplog.at_level("WARNING"):
        node = resolve_optimizer_configs(given, 3e-4, default, "lm")
    assert "learning_rate is ignored" in caplog.text
    optimizers, schedulers = configure_optimizer(node.child("lm"), [param])
    assert isinstance(optimizers[0], torch.optim.Adam) and schedulers[0]["interval"] == "step"
