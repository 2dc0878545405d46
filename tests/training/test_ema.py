"""EMA: ema-pytorch 0.2.3 update rule and state-dict layout (what upstream checkpoints contain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from stable_audio_ops.training.ema import EMA

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "unwrap_autoencoder"


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("running", torch.zeros(2))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def _upstream_ema(model_values, beta=0.9999, power=0.75, after=1):
    """Reference recurrence of ema-pytorch 0.2.3 (update_every=1) on a sequence of online values."""
    ema, initted = None, False
    for step, value in enumerate(model_values):
        if step <= after:
            ema = value
            continue
        if not initted:
            ema, initted = value, True
        epoch = max(step + 1 - after - 1, 0)
        decay = 0.0 if epoch <= 0 else min(1 - (1 + epoch) ** -power, beta)
        ema = ema + (value - ema) * (1 - decay)
    return ema


def test_update_matches_ema_pytorch_recurrence():
    torch.manual_seed(0)
    model = Tiny()
    ema = EMA(model, beta=0.9999, power=3 / 4, update_every=1, update_after_step=1)
    seen = []
    for i in range(12):
        with torch.no_grad():
            model.lin.weight.add_(torch.randn_like(model.lin.weight))
            model.running.fill_(float(i))
            model.count.fill_(i)
        seen.append((model.lin.weight.clone(), model.running.clone()))
        ema.update()
    expected_w = _upstream_ema([w for w, _ in seen])
    expected_r = _upstream_ema([r for _, r in seen])
    torch.testing.assert_close(ema.ema_model.lin.weight, expected_w, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ema.ema_model.running, expected_r, rtol=1e-6, atol=1e-6)
    assert int(ema.ema_model.count) == 0  # integer buffers are not averaged
    assert int(ema.step) == 12 and float(ema.initted) == 1.0
    assert not torch.equal(ema.ema_model.lin.weight, model.lin.weight)


def test_decay_warms_up_and_is_capped_at_beta():
    ema = EMA(Tiny(), beta=0.99, power=3 / 4, update_every=1, update_after_step=1)
    decays = []
    for _ in range(2000):
        ema.update()
        decays.append(ema.get_current_decay())
    assert decays[0] == 0.0 and decays[1] == 0.0
    assert decays[2] == pytest.approx(1 - 2 ** -0.75)
    assert all(a <= b for a, b in zip(decays[:-1], decays[1:], strict=True))
    assert max(decays) == 0.99


def test_update_every_skips_steps():
    model = Tiny()
    ema = EMA(model, update_every=3, update_after_step=0)
    with torch.no_grad():
        model.lin.weight.fill_(1.0)
    ema.update()  # step 0: copies
    assert torch.equal(ema.ema_model.lin.weight, model.lin.weight)
    with torch.no_grad():
        model.lin.weight.fill_(5.0)
    ema.update()  # step 1: skipped
    ema.update()  # step 2: skipped
    assert torch.all(ema.ema_model.lin.weight == 1.0)


def test_state_dict_layout_with_and_without_online_model():
    model = Tiny()
    with_online = EMA(model, include_online_model=True).state_dict()
    assert {"initted", "step", "ema_model.lin.weight", "online_model.lin.weight"} <= set(with_online)
    assert with_online["initted"].dtype == torch.float32 and tuple(with_online["initted"].shape) == (1,)
    assert with_online["step"].dtype == torch.int64 and tuple(with_online["step"].shape) == (1,)
    without = EMA(model, include_online_model=False).state_dict()
    assert not any(k.startswith("online_model.") for k in without)
    assert EMA(model, include_online_model=False).model is model


def test_loads_the_ema_part_of_an_upstream_training_checkpoint():
    from stable_audio_ops.models.factory import create_model_from_config

    config = json.loads((FIXTURE / "model_config.json").read_text())
    wrapped = torch.load(FIXTURE / "wrapped.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    prefix = "autoencoder_ema."
    part = {k[len(prefix):]: v for k, v in wrapped.items() if k.startswith(prefix)}
    ema = EMA(create_model_from_config(config), ema_model=create_model_from_config(config),
              beta=0.9999, power=3 / 4, update_every=1, update_after_step=1)
    ema.load_state_dict(part, strict=True)
    assert int(ema.step) == int(wrapped["autoencoder_ema.step"])
    for key, value in ema.state_dict().items():
        assert value.dtype == part[key].dtype and value.shape == part[key].shape, key
