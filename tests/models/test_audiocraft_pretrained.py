"""``audiocraft_pretrained``: a tiny EnCodec saved locally in Hugging Face layout (what audiocraft loads for
``facebook/encodec_32khz``) tokenizes and decodes as audiocraft's wrapper does; loading is strict and local only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.audiocraft_pretrained import AudiocraftCompressionPretransform
from stable_audio_ops.models.factory import create_pretransform_from_config

transformers = pytest.importorskip("transformers")


@pytest.fixture
def encodec_dir(tmp_path: Path):
    torch.manual_seed(0)
    # 4000 frames/s x 10 bits = 40 kbps per codebook: 80 kbps -> 2 codebooks
    config = transformers.EncodecConfig(
        target_bandwidths=[40.0, 80.0], sampling_rate=16000, audio_channels=1, num_filters=4, hidden_size=8,
        upsampling_ratios=[2, 2], codebook_size=1024, codebook_dim=8, num_lstm_layers=1, num_residual_layers=1)
    model = transformers.EncodecModel(config).eval()
    folder = tmp_path / "encodec"
    model.save_pretrained(folder)
    return folder, model


def _build(folder: Path, **config) -> AudiocraftCompressionPretransform:
    return create_pretransform_from_config(
        {"type": "audiocraft_pretrained", "config": {"model_path": str(folder), **config}}, 16000)


def test_tokens_and_audio_match_the_encodec_model_at_its_largest_bandwidth(encodec_dir) -> None:
    folder, reference = encodec_dir
    pre = _build(folder)
    assert (pre.num_quantizers, pre.codebook_size, pre.downsampling_ratio) == (2, 1024, 4)
    assert (pre.io_channels, pre.sample_rate, pre.is_discrete) == (1, 16000, True)
    saved = reference.state_dict()
    own = {k[len("model.model."):]: v for k, v in pre.state_dict().items()}
    assert own.keys() == saved.keys() and all(torch.equal(own[k], saved[k]) for k in saved)
    assert not any(p.requires_grad for p in pre.parameters())
    audio = torch.randn(2, 1, 64)
    with torch.no_grad():
        tokens = pre.tokenize(audio)
        expected = reference.encode(audio, None, 80.0).audio_codes[0]
        assert tokens.shape == (2, 2, 16) and torch.equal(tokens, expected)
        decoded = pre.decode_tokens(tokens)
        assert decoded.shape == (2, 1, 64) and decoded.dtype == torch.float32
        torch.testing.assert_close(decoded, reference.decode(expected[None], [None]).audio_values)
    with pytest.raises(NotImplementedError, match="tokens only"):
        pre.encode(audio)
    with pytest.raises(NotImplementedError, match="tokens only"):
        pre.decode(torch.zeros(2, 8, 16))


def test_loading_is_strict_and_names_the_folder_and_keys(encodec_dir) -> None:
    folder, _ = encodec_dir
    weights = load_file(folder / "model.safetensors")
    dropped = "decoder.layers.0.conv.bias"
    weights["quantizer.layers.7.codebook.embed"] = weights.pop(dropped)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=rf"(?s)EnCodec weights {folder}.*missing keys: {dropped}.*"
                                              r"unexpected keys: quantizer\.layers\.7\.codebook\.embed"):
        _build(folder)


def test_without_local_files_the_error_says_what_to_download_and_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        create_pretransform_from_config(
            {"type": "audiocraft_pretrained", "config": {"model_type": "stable-audio-ops-tests/no-such-encodec"}},
            32000)
    text = str(err.value)
    assert "config.model_type" in text and "not in the local Hugging Face cache" in text
    assert "https://huggingface.co/stable-audio-ops-tests/no-such-encodec" in text
    assert "Nothing is downloaded at run time" in text and "config.model_path" in text
    with pytest.raises(ConfigError, match=r"config\.model_path: .*holds no EnCodec model.*"
                                          r"https://huggingface\.co/facebook/encodec_32khz"):
        _build(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"config\.model_type: .*use the dac_pretrained pretransform"):
        create_pretransform_from_config({"type": "audiocraft_pretrained", "config": {"model_type": "dac_44khz"}},
                                        44100)
