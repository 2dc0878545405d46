"""Weighted loss terms over a shared ``info`` dict, as stable-audio-tools' training wrappers use them.

A training step fills one dict (``reals``, ``decoded``, ``kl``, ``loss_adv``, ...) and a
:class:`MultiLoss` turns it into ``(total, {name: weighted term})``. Each term keeps its weight in a
0-dim buffer named ``weight``; that is not decoration: upstream saves those buffers, so a wrapper
holding ``losses_gen = MultiLoss([...])`` has state-dict keys ``losses_gen.losses.{i}.weight`` and
upstream training checkpoints only load strictly if the same terms sit in the same order.

Weight schedule (same as upstream): every time a term is evaluated, ``weight *= decay`` when
``decay != 1``; with ``decay == 1`` the weight is put back to the configured value if it differs
(for instance after loading a checkpoint written with other weights).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn


class LossTerm(nn.Module, ABC):
    """Base of all weighted terms: a ``name``, a ``weight`` buffer and a per-evaluation ``decay``.

    ``required_keys`` are the ``info`` keys the term reads; :class:`MultiLoss` skips the term when one
    is absent. ``start_step`` (an extension; 0 = always, as upstream) makes :class:`MultiLoss` skip the term,
    without computing it, before that training step: a curriculum such as "reconstruct with the spectral loss
    first, then refine timbre with a log-mel term" in one run.
    """

    def __init__(
        self, name: str, weight: float = 1.0, decay: float = 1.0, required_keys: tuple[str, ...] = (),
        start_step: int = 0,
    ):
        super().__init__()
        self.name = name
        self.start_step = int(start_step)
        self.decay = float(decay)
        self.configured_weight = float(weight)
        self.required_keys = tuple(required_keys)
        self.register_buffer("weight", torch.tensor(float(weight)))

    def step_weight(self) -> torch.Tensor:
        """Apply the per-evaluation weight schedule and return the weight to use now."""
        with torch.no_grad():
            if self.decay != 1.0:
                self.weight.mul_(self.decay)
            else:
                # Unconditional refill == upstream's "reset if different", without a device sync.
                self.weight.fill_(self.configured_weight)
        return self.weight

    @abstractmethod
    def value(self, info: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The unweighted loss value."""

    def forward(self, info: Mapping[str, torch.Tensor]) -> torch.Tensor:
        loss = self.value(info)
        return self.step_weight() * loss

    def extra_repr(self) -> str:
        return f"name={self.name!r}, weight={self.configured_weight:g}, decay={self.decay:g}"


class ValueLoss(LossTerm):
    """A value some other code already computed (``kl``, ``loss_adv``, ...), weighted."""

    def __init__(self, key: str, weight: float = 1.0, name: str | None = None, decay: float = 1.0,
                 start_step: int = 0):
        super().__init__(name=name or key, weight=weight, decay=decay, required_keys=(key,), start_step=start_step)
        self.key = key

    def value(self, info):
        return info[self.key]


def _masked_mean(elementwise: torch.Tensor, info: Mapping, mask_key: str | None) -> torch.Tensor:
    mask = info.get(mask_key) if mask_key is not None else None
    if mask is None:
        return elementwise.mean()
    if mask.dim() == 2 and elementwise.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.shape[1] != elementwise.shape[1]:
        mask = mask.expand(-1, elementwise.shape[1], *mask.shape[2:])
    return elementwise[mask.bool()].mean()


class ElementwiseLoss(LossTerm):
    """Mean of an elementwise ``distance(info[key_a], info[key_b])`` (optionally only where ``mask_key``).

    ``distance`` is a ``torch.nn.functional`` loss called with ``reduction="none"``, so the mask can
    pick elements before the mean. L1 and MSE differ only in it; the state dict holds just ``weight``.
    """

    def __init__(
        self,
        distance: Callable[..., torch.Tensor],
        key_a: str,
        key_b: str,
        weight: float = 1.0,
        name: str = "elementwise_loss",
        decay: float = 1.0,
        *,
        mask_key: str | None = None,
    ):
        super().__init__(name=name, weight=weight, decay=decay, required_keys=(key_a, key_b))
        self.distance = distance
        self.key_a, self.key_b, self.mask_key = key_a, key_b, mask_key

    def value(self, info):
        return _masked_mean(self.distance(info[self.key_a], info[self.key_b], reduction="none"), info, self.mask_key)


class L1Loss(ElementwiseLoss):
    """Mean absolute difference of ``info[key_a]`` and ``info[key_b]`` (optionally only where ``mask_key``)."""

    def __init__(self, key_a: str, key_b: str, weight: float = 1.0, name: str = "l1_loss", decay: float = 1.0,
                 *, mask_key: str | None = None):
        super().__init__(F.l1_loss, key_a, key_b, weight, name, decay, mask_key=mask_key)


class MSELoss(ElementwiseLoss):
    """Mean squared difference of ``info[key_a]`` and ``info[key_b]`` (optionally only where ``mask_key``)."""

    def __init__(self, key_a: str, key_b: str, weight: float = 1.0, name: str = "mse_loss", decay: float = 1.0,
                 *, mask_key: str | None = None):
        super().__init__(F.mse_loss, key_a, key_b, weight, name, decay, mask_key=mask_key)


class AuralossLoss(LossTerm):
    """A two-signal loss module (e.g. :class:`~.spectral.MultiResolutionSTFTLoss`) on two info keys.

    Called as ``module(info[target_key], info[input_key])``: upstream passes the reference first
    ("wrong order", kept there on purpose) and we keep that order so that any asymmetric option
    (``scale_invariance``) behaves as it does upstream. The default spectral terms are symmetric.
    """

    def __init__(
        self,
        module: nn.Module,
        input_key: str,
        target_key: str,
        name: str,
        weight: float = 1.0,
        decay: float = 1.0,
        start_step: int = 0,
    ):
        super().__init__(name=name, weight=weight, decay=decay, required_keys=(input_key, target_key),
                         start_step=start_step)
        self.loss_module = module
        self.input_key = input_key
        self.target_key = target_key

    def value(self, info):
        return self.loss_module(info[self.target_key], info[self.input_key])


class MultiLoss(nn.Module):
    """Sum of weighted terms; ``forward(info) -> (total, {name: weighted value})``.

    Terms whose inputs are missing from ``info`` are skipped (upstream skips terms that raise
    ``KeyError``; checking the declared keys gives the same result without hiding real bugs).
    """

    def __init__(self, losses: Iterable[LossTerm]):
        super().__init__()
        self.losses = nn.ModuleList(losses)
        names = [term.name for term in self.losses]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"loss term names must be unique; duplicated: {', '.join(duplicates)}")

    @property
    def names(self) -> list[str]:
        return [term.name for term in self.losses]

    def forward(self, info: Mapping[str, torch.Tensor],
                step: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``step``: the training step, for terms with a ``start_step`` (``None``: every term counts)."""
        total: torch.Tensor | None = None
        per_name: dict[str, torch.Tensor] = {}
        for term in self.losses:
            if any(key not in info for key in term.required_keys):
                continue
            if step is not None and step < term.start_step:
                continue
            value = term(info)
            per_name[term.name] = value
            total = value if total is None else total + value
        if total is None:
            total = torch.zeros(())
        return total, per_name
