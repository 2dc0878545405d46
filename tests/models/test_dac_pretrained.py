"""``dac_pretrained``: a tiny DAC saved in descript-audio-codec's ``.pth`` layout loads strictly through a model
config, behaves as upstream's pretransform, and a missing file fails with download instructions (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.dac_pretrained import DACCodec, PretrainedDACPretransform
from stable_audio_ops.models.factory import create_model_from_config, create_pretransform_from_config
from stable_audio_ops.models.meta_init import meta_tensor_names, parameters_on_meta

TINY = {"encoder_dim": 4, "encoder_rates": [2, 2], "latent_dim": 8, "decoder_dim": 16, "decoder_rates": [2, 2],
        "n_codebooks": 3, "codebook_size": 16, "codebook_dim": 4, "quantizer_dropout": 0.5, "sample_rate": 16000}


def _write_dac_file(path: Path, state_dict: dict | None = None) -> dict:
    """descript's ``BaseModel.save(package=False)`` layout; returns the state dict written."""
    torch.manual_seed(0)
    codec = DACCodec(**TINY)
    with torch.no_grad():
        for p in codec.parameters():
            p.add_(0.1 * torch.randn_like(p))
    state = dict(codec.state_dict()) if state_dict is None else state_dict
    torch.save({"state_dict": state, "metadata": {"kwargs": {**TINY, "extra_saved_attr": 1}}}, path)
    return state


@pytest.fixture
def dac_file(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "tiny_dac.pth"
    return path, _write_dac_file(path)


def _pretransform(path: Path, **config) -> PretrainedDACPretransform:
    return create_pretransform_from_config({"type": "dac_pretrained", "config": {"model_path": str(path), **config}},
                                           16000)


def test_uncond_model_over_dac_pretrained_loads_the_file_strictly_with_descript_keys(dac_file) -> None:
    path, state = dac_file
    config = {"model_type": "diffusion_uncond", "sample_size": 64, "sample_rate": 16000,
              "model": {"type": "dit", "config": {"in_channels": 8, "embed_dim": 32, "depth": 1, "num_heads": 1},
                        "pretransform": {"type": "dac_pretrained", "config": {"model_path": str(path)}}}}
    model = create_model_from_config(config)
    own = {k[len("pretransform.model."):]: v for k, v in model.state_dict().items()
           if k.startswith("pretransform.model.")}
    assert own.keys() == state.keys() and all(torch.equal(own[k], state[k]) for k in state)
    # descript-audio-codec's names, as its released weights.pth has them
    for key in ("encoder.block.0.weight_v", "encoder.block.1.block.0.block.0.alpha", "encoder.block.4.weight_g",
                "quantizer.quantizers.2.in_proj.weight_g", "quantizer.quantizers.0.codebook.weight",
                "decoder.model.1.block.1.weight_v", "decoder.model.4.weight_v"):
        assert key in state
    assert state["encoder.block.4.weight_v"].shape[0] == TINY["latent_dim"]  # last encoder conv -> latent_dim
    pre = model.pretransform
    assert (pre.downsampling_ratio, pre.encoded_channels, pre.io_channels) == (4, 8, 1)
    assert (pre.is_discrete, pre.num_quantizers, pre.codebook_size, pre.sample_rate) == (True, 3, 16, 16000)
    model.train()
    assert not pre.training and not any(p.requires_grad for p in pre.parameters())
    with parameters_on_meta():  # as when a checkpoint of this model is loaded: the DAC weights still come in
        lean = create_model_from_config(config)
    assert meta_tensor_names(lean.pretransform) == [] and meta_tensor_names(lean.model)
    assert torch.equal(lean.pretransform.model.decoder.model[0].weight_v, state["decoder.model.0.weight_v"])


def test_encode_decode_tokens_and_scale_behave_as_upstream(dac_file) -> None:
    path, _ = dac_file
    pre = _pretransform(path)
    audio = torch.randn(2, 1, 64)
    with torch.no_grad():
        latents = pre.encode(audio)
        assert latents.shape == (2, 8, 16)
        assert torch.equal(latents, pre.model.encoder(audio))  # quantize_on_decode: encode stays continuous
        decoded = pre.decode(latents)
        tokens = pre.tokenize(audio)
        assert decoded.shape == (2, 1, 64) and decoded.abs().max() <= 1  # DAC ends in tanh
        assert tokens.shape == (2, 3, 16) and tokens.dtype == torch.long and int(tokens.max()) < 16
        torch.testing.assert_close(pre.decode_tokens(tokens), decoded)
        scaled = _pretransform(path, scale=2.0)
        torch.testing.assert_close(scaled.encode(audio), latents / 2)
        torch.testing.assert_close(scaled.decode(latents / 2), decoded)
        quantized = _pretransform(path, quantize_on_decode=False)
        z_q = quantized.encode(audio)
        torch.testing.assert_close(z_q, pre.model.quantizer(pre.model.encoder(audio))[0])
        torch.testing.assert_close(quantized.decode(z_q), decoded)


def test_strict_loading_names_the_file_and_the_missing_and_unexpected_keys(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    state = _write_dac_file(tmp_path / "good.pth")
    state = {("quantizer.quantizers.9.codebook.weight" if k == "decoder.model.0.bias" else k): v
             for k, v in state.items()}
    _write_dac_file(path, state)
    with pytest.raises(CheckpointError, match=r"(?s)broken\.pth.*decoder\.model\.0\.bias.*"
                                              r"quantizer\.quantizers\.9\.codebook\.weight"):
        _pretransform(path)
    torch.save(state, path)  # a bare state dict is not descript's layout
    with pytest.raises(CheckpointError, match=r"broken\.pth: expected descript-audio-codec's layout"):
        _pretransform(path)


def test_without_a_local_file_the_error_says_what_to_download_and_where(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = tmp_path / ".cache/descript/dac/weights_44khz_8kbps_0.0.1.pth"
    with pytest.raises(ConfigError) as err:
        create_pretransform_from_config({"type": "dac_pretrained", "config": {}}, 44100)
    text = str(err.value)
    assert "https://github.com/descriptinc/descript-audio-codec/releases/download/0.0.1/weights.pth" in text
    assert f"save it as {cache}" in text and "Nothing is downloaded at run time" in text
    with pytest.raises(ConfigError, match=r"config\.model_path: .*nowhere\.pth, which does not exist.*"
                                          r"releases/download/1\.0\.0/weights_44khz_16kbps\.pth"):
        create_pretransform_from_config({"type": "dac_pretrained", "config": {
            "model_bitrate": "16kbps", "model_path": str(tmp_path / "nowhere.pth")}}, 44100)
    with pytest.raises(ConfigError, match=r"config\.model_bitrate: no released DAC model 24khz/16kbps"):
        create_pretransform_from_config(
            {"type": "dac_pretrained", "config": {"model_type": "24khz", "model_bitrate": "16kbps"}}, 24000)
    # the file in DAC's own cache location is picked up without any config
    cache.parent.mkdir(parents=True)
    _write_dac_file(cache)
    assert create_pretransform_from_config({"type": "dac_pretrained"}, 44100).downsampling_ratio == 4
