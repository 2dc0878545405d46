"""Exponential moving average of a model's weights, laid out like ema-pytorch 0.2.3.

Upstream's training wrappers hold an ``ema_pytorch.EMA`` (0.2.3, later vendored), and released
training checkpoints store it as ``<attr>.ema_model.*``, ``<attr>.online_model.*`` (when the online
model is included), ``<attr>.initted`` (float32 [1]) and ``<attr>.step`` (int64 [1]). This module
reproduces that state-dict layout and the update rule so those checkpoints load strictly and
resumed runs continue with the same decay schedule.

Update rule (per :meth:`EMA.update` call, ``s`` = calls so far):
- every ``update_every``-th call only; calls with ``s <= update_after_step`` copy the online weights;
- the first real update also copies once (``initted``), then
  ``ema <- lerp(ema, online, 1 - decay)`` with
  ``decay = clamp(1 - (1 + e / inv_gamma) ** -power, min_value, beta)``, ``e = max(s - update_after_step - 1, 0)``
  and ``decay = 0`` when ``e == 0``.
Only float32/float16 parameters and buffers are averaged (others, e.g. integer counters, are left alone).

0.0.20 vendors ema-pytorch 0.2.3 with this same rule; what changed from 0.0.19 is how often the wrappers
call :meth:`EMA.update` and with which settings (the autoencoder's: every 10 global steps, ``beta 0.999``,
``update_after_step 2000``; see :mod:`stable_audio_ops.training.autoencoder`; diffusion_cond: ``beta 0.999``,
:mod:`stable_audio_ops.training.diffusion`; ARC: ``beta 0.9995``, :mod:`stable_audio_ops.training.arc`). ``step``
counts calls, not global steps, so a caller that updates every 10 steps reaches ``update_after_step`` 10 times later.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

_AVERAGED_DTYPES = (torch.float32, torch.float16)


class EMA(nn.Module):
    """EMA shadow of ``model``; ``ema_model`` may be given when ``deepcopy`` is not possible.

    ``deepcopy`` of a module that uses legacy ``weight_norm`` fails once a forward pass has produced
    the derived ``weight`` tensor, which is why upstream's factories pass a freshly built copy.
    """

    def __init__(
        self,
        model: nn.Module,
        ema_model: nn.Module | None = None,
        beta: float = 0.9999,
        update_after_step: int = 100,
        update_every: int = 10,
        inv_gamma: float = 1.0,
        power: float = 2 / 3,
        min_value: float = 0.0,
        include_online_model: bool = True,
    ):
        super().__init__()
        self.beta = beta
        self.include_online_model = include_online_model
        if include_online_model:
            self.online_model = model
        else:
            # A list hides the module from the module tree, so state_dict() does not duplicate it.
            self._online = [model]
        self.ema_model = ema_model if ema_model is not None else copy.deepcopy(model)
        self.ema_model.requires_grad_(False)

        self.parameter_names = {
            n for n, p in self.ema_model.named_parameters() if p.dtype in _AVERAGED_DTYPES
        }
        self.buffer_names = {n for n, b in self.ema_model.named_buffers() if b.dtype in _AVERAGED_DTYPES}

        self.update_every = update_every
        self.update_after_step = update_after_step
        self.inv_gamma = inv_gamma
        self.power = power
        self.min_value = min_value

        self.register_buffer("initted", torch.tensor([0.0]))
        self.register_buffer("step", torch.tensor([0], dtype=torch.long))

    @property
    def model(self) -> nn.Module:
        """The online (trained) model."""
        return self.online_model if self.include_online_model else self._online[0]

    def _pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(ema tensor, online tensor) for every averaged parameter and buffer, matched by name."""
        online_params = dict(self.model.named_parameters())
        online_buffers = dict(self.model.named_buffers())
        pairs = []
        for name, p in self.ema_model.named_parameters():
            if name in self.parameter_names:
                pairs.append((p, online_params[name]))
        for name, b in self.ema_model.named_buffers():
            if name in self.buffer_names:
                pairs.append((b, online_buffers[name]))
        return pairs

    @torch.no_grad()
    def copy_params_from_model_to_ema(self) -> None:
        for ema_t, online_t in self._pairs():
            ema_t.copy_(online_t)

    def get_current_decay(self) -> float:
        epoch = max(int(self.step.item()) - self.update_after_step - 1, 0)
        if epoch <= 0:
            return 0.0
        value = 1.0 - (1.0 + epoch / self.inv_gamma) ** (-self.power)
        return min(max(value, self.min_value), self.beta)

    @torch.no_grad()
    def update(self) -> None:
        """Advance one call; the caller picks the cadence (each wrapper's docstring says which)."""
        step = int(self.step.item())
        self.step += 1
        if step % self.update_every != 0:
            return
        if step <= self.update_after_step:
            self.copy_params_from_model_to_ema()
            return
        if not bool(self.initted.item()):
            self.copy_params_from_model_to_ema()
            self.initted.fill_(1.0)
        decay = self.get_current_decay()
        for ema_t, online_t in self._pairs():
            ema_t.lerp_(online_t.to(ema_t.dtype), 1.0 - decay)

    def forward(self, *args, **kwargs):
        return self.ema_model(*args, **kwargs)
