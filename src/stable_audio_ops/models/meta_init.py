"""Build a model whose parameters take no memory, for a load that replaces them all.

Loading a checkpoint into a freshly built model holds two copies of the weights at once: the random
initialisation and the file's tensors (for Stable Audio Open 1.0, 2 x 4.85 GB). Inside
:func:`parameters_on_meta` every parameter a module registers is moved to the ``meta`` device (shape and
dtype only), so construction allocates nothing and random initialisation costs nothing; a strict
``load_state_dict(..., assign=True)`` then makes the checkpoint's (memory-mapped) tensors the
parameters. Buffers stay real: some are computed in ``__init__`` and are not in checkpoints
(rotary ``inv_freq``), and they are small.

Weights that construction loads from files of their own (frozen Hugging Face text encoders, kept outside
the module tree and so absent from our checkpoints) must stay real: their loader runs inside
:func:`real_parameters`.

Only the thread that entered the context is affected (the patch checks a thread-local flag), so a server
thread building or running another model at the same time sees ordinary modules.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

_ORIGINAL_REGISTER = nn.Module.register_parameter
_local = threading.local()
_lock = threading.Lock()
_active = 0  # threads inside parameters_on_meta; the patch is installed while > 0


def _meta_wanted() -> bool:
    return getattr(_local, "meta", False)


def _register_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
    if (param is not None and _meta_wanted() and param.device.type != "meta"
            and not isinstance(param, nn.parameter.UninitializedParameter)):
        param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
    _ORIGINAL_REGISTER(self, name, param)


@contextmanager
def _flag(value: bool) -> Iterator[None]:
    previous = _meta_wanted()
    _local.meta = value
    try:
        yield
    finally:
        _local.meta = previous


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Parameters registered in this thread while inside go to the ``meta`` device (buffers do not)."""
    global _active
    with _lock:
        if _active == 0:
            nn.Module.register_parameter = _register_parameter  # type: ignore[method-assign]
        _active += 1
    try:
        with _flag(True):
            yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                nn.Module.register_parameter = _ORIGINAL_REGISTER  # type: ignore[method-assign]


@contextmanager
def real_parameters() -> Iterator[None]:
    """Suspend :func:`parameters_on_meta` (for weights loaded from their own files during construction)."""
    with _flag(False):
        yield


def meta_tensor_names(module: nn.Module) -> list[str]:
    """Parameters and buffers still on ``meta`` (nothing was loaded into them)."""
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    return [name for name, tensor in named if tensor.device.type == "meta"]


__all__ = ["meta_tensor_names", "parameters_on_meta", "real_parameters"]
