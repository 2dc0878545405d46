"""Parity case unwrap_autoencoder: our unwrap of upstream's wrapped.ckpt equals upstream's export."""

from __future__ import annotations

import copy

import torch
from safetensors.torch import load_file

from stable_audio_ops.training.unwrap import unwrap_checkpoint
from tests.parity.harness import load_case

CASE = "unwrap_autoencoder"


def _assert_same(case, got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(expected)
    assert len(got) == case.case["n_keys_expected"]
    for key, value in expected.items():
        atol, rtol = case.tolerance(key)
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert torch.allclose(got[key], value, atol=atol, rtol=rtol), key


def test_unwrap_matches_upstream_export_safetensors_and_ckpt(tmp_path):
    case = load_case(CASE)
    wrapped = case.root / "wrapped.ckpt"
    out_st = unwrap_checkpoint(case.model_config, wrapped, tmp_path / "model", use_safetensors=True)
    out_ck = unwrap_checkpoint(case.model_config, wrapped, tmp_path / "model", use_safetensors=False)
    assert out_st.name == "model.safetensors" and out_ck.name == "model.ckpt"
    _assert_same(case, load_file(str(out_st)), case.state_dict())
    _assert_same(case, torch.load(out_ck, map_location="cpu", weights_only=True)["state_dict"], case.ckpt_state_dict())


def test_without_ema_the_online_weights_are_exported(tmp_path):
    case = load_case(CASE)
    config = copy.deepcopy(case.model_config)
    config["training"]["use_ema"] = False
    wrapped = torch.load(case.root / "wrapped.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    expected = {k[len("autoencoder."):]: v for k, v in wrapped.items() if k.startswith("autoencoder.")}
    out = unwrap_checkpoint(config, case.root / "wrapped.ckpt", tmp_path / "online.safetensors")
    got = load_file(str(out))
    _assert_same(case, got, expected)
    # the three copies in the fixture were perturbed independently: online != EMA
    assert not torch.equal(got["encoder.layers.0.weight_v"], case.state_dict()["encoder.layers.0.weight_v"])
