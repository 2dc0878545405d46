"""parameters_on_meta: parameters cost nothing, buffers stay real, other threads are untouched."""

from __future__ import annotations

import threading

import torch
from torch import nn

from stable_audio_ops.models.meta_init import meta_tensor_names, parameters_on_meta, real_parameters
from stable_audio_ops.models.transformer import RotaryEmbedding


def test_parameters_are_shape_only_and_buffers_real() -> None:
    with parameters_on_meta():
        linear = nn.Linear(4096, 4096)
        rotary = RotaryEmbedding(32)
    assert linear.weight.device.type == "meta" and linear.weight.shape == (4096, 4096)
    assert linear.weight.requires_grad
    assert rotary.inv_freq.device.type == "cpu" and torch.isfinite(rotary.inv_freq).all()
    assert meta_tensor_names(linear) == ["weight", "bias"]
    assert nn.Linear(2, 2).weight.device.type == "cpu"  # back to normal after the context


def test_real_parameters_inside_and_other_threads_unaffected() -> None:
    seen: dict[str, str] = {}
    inside, done = threading.Event(), threading.Event()

    def other_thread() -> None:
        inside.wait()
        seen["other"] = nn.Linear(2, 2).weight.device.type
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with parameters_on_meta():
        inside.set()
        done.wait(10)
        with real_parameters():
            seen["real"] = nn.Linear(2, 2).weight.device.type
        seen["meta"] = nn.Linear(2, 2).weight.device.type
    thread.join()
    assert seen == {"other": "cpu", "real": "cpu", "meta": "meta"}
