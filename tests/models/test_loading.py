"""The one model loader: built with parameters on ``meta``, filled from the memory-mapped file (assign).

What a user needs from it: the model it gives is exactly the model the old build-then-copy path gave
(every parameter and buffer, and the outputs, bitwise), for ``.safetensors`` and ``.ckpt``; and a file
that does not fit still fails strictly, naming the file and the keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import build_and_load, load_local_model
from tests.parity.harness import FIXTURES

# Oobleck VAE (weight-norm parametrizations), a DiT with rotary tables (non-persistent buffers) and an
# autoencoder pretransform (whose load goes through the pretransform's own load_state_dict).
CASES = ("ae_oobleck_vae", "dit_cond", "dit_latent_rf")
SUFFIXES = (".safetensors", ".ckpt")


def _config(case: str) -> dict:
    return json.loads((FIXTURES / case / "model_config.json").read_text())


def _old_path(case: str, checkpoint: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model_from_config(_config(case))
    load_state_dict_checked(model, load_ckpt_state_dict(checkpoint), strict=True)
    return model.eval()


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}  # non-persistent buffers too


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("case", CASES)
def test_new_path_gives_bitwise_the_model_of_the_old_path(case: str, suffix: str) -> None:
    checkpoint = FIXTURES / case / f"model{suffix}"
    old = _old_path(case, checkpoint)
    new = build_and_load(_config(case), "test config", checkpoint).eval()
    old_tensors, new_tensors = _tensors(old), _tensors(new)
    assert sorted(new_tensors) == sorted(old_tensors)
    for name, tensor in new_tensors.items():
        assert tensor.device.type == "cpu", name
        assert tensor.dtype == old_tensors[name].dtype and torch.equal(tensor, old_tensors[name]), name
    assert all(p.requires_grad for p in new.parameters()) == all(p.requires_grad for p in old.parameters())
    if case == "ae_oobleck_vae":
        audio = torch.randn(1, 1, 2048, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            mean = old.encoder(audio).chunk(2, dim=1)[0]  # the VAE's posterior mean
            assert torch.equal(new.encoder(audio), old.encoder(audio)) and torch.equal(new.decode(mean), old.decode(mean))
    else:
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(2, old.io_channels, 32, generator=gen)
        t = torch.tensor([0.25, 0.9])
        with torch.no_grad():
            assert torch.equal(new.model(x, t), old.model(x, t))


def test_load_local_model_has_no_shape_only_tensors_and_trains_from_the_file_without_writing_it(tmp_path) -> None:
    source = FIXTURES / "ae_oobleck_vae" / "model.ckpt"
    loaded = load_local_model(source, FIXTURES / "ae_oobleck_vae" / "model_config.json")
    assert not [n for n, t in _tensors(loaded.model).items() if t.device.type == "meta"]
    weight = next(loaded.model.parameters())
    before = load_ckpt_state_dict(source)
    with torch.no_grad():
        weight.add_(1.0)  # memory-mapped pages are private copies: the checkpoint file stays as it was
    after = load_ckpt_state_dict(source)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_new_path_is_still_strict(tmp_path, suffix: str) -> None:
    from stable_audio_ops.models.checkpoints import save_model_checkpoint

    case = "dit_cond"
    state = dict(load_ckpt_state_dict(FIXTURES / case / "model.safetensors"))
    missing = sorted(state)[3]
    state.pop(missing)
    state["model.extra.weight"] = torch.zeros(2)
    bad = save_model_checkpoint(state, tmp_path / f"bad{suffix}")
    with pytest.raises(CheckpointError) as info:
        build_and_load(_config(case), "test config", bad)
    msg = str(info.value)
    assert str(bad) in msg
    assert f"missing from checkpoint (1):\n    {missing}" in msg
    assert "unexpected in checkpoint (1):\n    model.extra.weight" in msg


def test_half_precision_file_loads_as_the_models_dtype(tmp_path) -> None:
    from stable_audio_ops.models.checkpoints import save_model_checkpoint

    case = "ae_oobleck_vae"
    state = {k: v.half() if v.is_floating_point() else v
             for k, v in load_ckpt_state_dict(FIXTURES / case / "model.safetensors").items()}
    half = save_model_checkpoint(state, tmp_path / "half.safetensors")
    old, new = _old_path(case, half), build_and_load(_config(case), "test config", half)
    for name, tensor in _tensors(new).items():
        assert tensor.dtype == _tensors(old)[name].dtype and torch.equal(tensor, _tensors(old)[name]), name
