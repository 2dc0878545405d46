"""``transformer`` discriminator: 0.0.20's state-dict keys, transformer widths, the tight STFT front end,
sliding-window locality of the resampling block, losses, and config errors that name their key."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.discriminators import create_discriminator_from_config
from stable_audio_ops.models.gan_losses import relativistic_losses
from stable_audio_ops.models.resampling_transformer import TransformerResamplingBlock
from stable_audio_ops.models.transformer_discriminator import TightComplexSTFT, transformer_dim

SMALL = {
    "patched_kwargs": {"patch_sizes": [8, 16], "depths": [1, 2], "strides": [2, 4], "sliding_window_widths": [2, 1]},
    "stft_kwargs": {"enabled": True, "n_ffts": [32], "depths": [1], "strides": [2], "sliding_window_widths": [2]},
    "mfb_kwargs": {"enabled": True, "levels": [2], "depths": [1], "strides": [2], "sliding_window_widths": [1]},
}


def _build(config: dict, in_channels: int = 2):
    return create_discriminator_from_config({"type": "transformer", "config": config}, in_channels=in_channels,
                                            sample_rate=16000)


def upstream_critic_keys(prefix: str, depth: int) -> list[str]:
    """0.0.20's TransformerDiscriminator: ``discriminator`` (TransformerResamplingBlock: legacy-weight-normed
    ``mapping``, ``new_tokens``, rms-normed differential TransformerBlocks with RoPE) and ``decision_map``."""
    keys = [f"{prefix}.discriminator.{k}" for k in ("new_tokens", "mapping.bias", "mapping.weight_g", "mapping.weight_v")]
    for i in range(depth):
        layer = f"{prefix}.discriminator.transformers.{i}"
        keys += [f"{layer}.{k}" for k in (
            "pre_norm.gamma", "self_attn.to_qkv.weight", "self_attn.to_out.weight", "self_attn.q_norm.gamma",
            "self_attn.k_norm.gamma", "ff_norm.gamma", "ff.ff.0.proj.weight", "ff.ff.0.proj.bias", "ff.ff.2.weight",
            "ff.ff.2.bias", "rope.inv_freq")]
    return [*keys, f"{prefix}.decision_map.weight"]


def test_state_dict_keys_and_shapes_match_upstream():
    state = _build(SMALL).state_dict()
    expected = (
        upstream_critic_keys("stft_discriminators.discriminators.0", 1)
        + ["stft_discriminators.discriminators.0.pretransform.psd", "stft_discriminators.discriminators.0.pretransform.s2a"]
        + upstream_critic_keys("patched_discriminators.discriminators.0", 1)
        + upstream_critic_keys("patched_discriminators.discriminators.1", 2)
        + upstream_critic_keys("fb_discriminators.discriminators.0", 1)
        + [f"fb_discriminators.discriminators.0.pretransform.{part}.kernel" for part in ("encoder", "decoder")]
    )
    assert sorted(state) == sorted(expected)
    # stereo STFT of 32: 17 bins x (re, im) x 2 channels in; width 192 (3 heads of 64), differential q/k/v x 5
    critic = "stft_discriminators.discriminators.0"
    assert state[f"{critic}.discriminator.mapping.weight_v"].shape == (192, 68, 1)
    assert state[f"{critic}.discriminator.transformers.0.self_attn.to_qkv.weight"].shape == (5 * 192, 192)
    assert state[f"{critic}.discriminator.transformers.0.ff.ff.0.proj.weight"].shape == (2 * 288, 192)  # ff_mult 1.5
    assert state[f"{critic}.discriminator.transformers.0.rope.inv_freq"].shape == (16,)  # RoPE on 32 of 64 dims
    assert state[f"{critic}.pretransform.psd"].shape == (1, 1, 17, 1)


def test_default_config_is_three_patched_critics_with_upstream_widths():
    state = _build({}).state_dict()
    assert {k.split(".")[0] for k in state} == {"patched_discriminators"}
    widths = [state[f"patched_discriminators.discriminators.{i}.decision_map.weight"].shape[1] for i in range(3)]
    # stereo patches of 29, 443, 953 samples: 16 sqrt(c) rounded to whole 64-dim heads, clamped to 192..512
    assert widths == [192, 448, 512] == [transformer_dim(2 * p) for p in (29, 443, 953)]
    assert "dyt" not in str(state.keys()) and not any("lambda_dc" in k for k in state)


def test_options_change_the_layers_as_upstream():
    state = _build({"patched_kwargs": {"patch_sizes": [8], "depths": [1], "strides": [2], "sliding_window_widths": [1],
                                       "dyt": True, "differential": False, "feat_scale": True, "layer_scale": True}}).state_dict()
    layer = "patched_discriminators.discriminators.0.discriminator.transformers.0"
    assert state[f"{layer}.self_attn.to_qkv.weight"].shape == (3 * 192, 192)
    assert {f"{layer}.pre_norm.alpha", f"{layer}.self_attn.q_norm.alpha", f"{layer}.self_attn.lambda_dc",
            f"{layer}.self_attn_scale.scale", f"{layer}.ff_scale.scale"} <= set(state)


def test_tight_stft_front_end_keeps_the_signal_energy():
    """Sine window at hop n/2, unitary FFT and sqrt 2 on interior one-sided bins: a frame (Parseval)
    tight frame, so the packed coefficients carry exactly the energy of every sample two windows cover."""
    torch.manual_seed(0)
    stft = TightComplexSTFT(channels=2, n_fft=32)
    x = torch.randn(3, 2, 16 * 20)
    x[..., :16] = 0
    x[..., -16:] = 0
    packed = stft.encode(x)
    assert packed.shape == (3, 2 * 2 * 17, 19)
    assert packed.pow(2).sum().item() == pytest.approx(x.pow(2).sum().item(), rel=1e-5)
    # interleaving: channel 2k is bin k's real part, 2k+1 its imaginary part; DC has no imaginary part
    assert packed[:, 1].abs().max().item() < 1e-5


def test_sliding_window_limits_what_each_output_frame_sees():
    torch.manual_seed(0)
    block = TransformerResamplingBlock(4, 64, stride=2, sliding_window=[1, 1], transformer_depth=1, dim_heads=64,
                                       dyt=False)
    for p in block.parameters():  # leave zero-initialised branches: make every path live
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(1, 4, 20)
    out = block(x)
    assert out.shape == (1, 64, 10)
    # packed groups of 3 tokens (2 frames + 1 query), window 1 * 3 tokens each side: output frame 4 sees
    # groups 3..5 only
    far, near = x.clone(), x.clone()
    far[..., 14:16] += 5.0  # group 7
    near[..., 10:12] += 5.0  # group 5
    assert torch.allclose(block(far)[..., 4], out[..., 4], atol=1e-6)
    assert not torch.allclose(block(near)[..., 4], out[..., 4], atol=1e-3)


def test_loss_is_rpgan_averaged_over_critics_and_runs_on_short_odd_inputs():
    torch.manual_seed(0)
    disc = _build(SMALL)
    reals, fakes = torch.randn(2, 2, 301), torch.randn(2, 2, 301)
    dis, adv, fm = disc.loss(reals, fakes)
    assert all(torch.isfinite(t) for t in (dis, adv, fm)) and fm > 0
    with torch.no_grad():
        logits_real, features_real = disc(reals)
        logits_fake, _ = disc(fakes)
    assert len(logits_real) == 4 and all(len(f) == 2 for f in features_real)  # mapped input + first layer
    pairs = [relativistic_losses(r, f) for r, f in zip(logits_real, logits_fake, strict=True)]
    assert dis.item() == pytest.approx(sum(p[0] for p in pairs).item() / 4, rel=1e-5)
    assert adv.item() == pytest.approx(sum(p[1] for p in pairs).item() / 4, rel=1e-5)
    # the running critic loss that gates upstream's input noise moved towards this step's value
    assert disc.last_disc_loss == pytest.approx(0.99 + 0.01 * dis.item())


def test_mfb_use_hil_swaps_in_filter_bank_critics():
    state = _build({"patched_kwargs": {"enabled": False},
                    "mfb_kwargs": {"enabled": True, "use_HIL": True, "periods": [1, 2], "taps": 16,
                                   "channels": [4, 8], "strides": [2, 1], "kernel_sizes": [3, 3]}}).state_dict()
    assert "fb_discriminators.discriminators.1.pqmf.pqmf_filter" in state
    assert state["fb_discriminators.discriminators.0.convs.0.parametrizations.weight.original1"].shape == (4, 2, 1, 3)


@pytest.mark.parametrize(("config", "key"), [
    ({"chroma_kwargs": {"enabled": True}}, "config.chroma_kwargs.enabled"),
    ({"add_noise": True}, "config.add_noise"),
    ({"patched_kwargs": {"patch_size": [8]}}, "config.patched_kwargs.patch_size"),
    ({"mfb_kwargs": {"enabled": True, "use_HIL": True, "levels": [2]}}, "config.mfb_kwargs.levels"),
    ({"loss_type": "wgan"}, "config.loss_type"),
    ({"in_channels": 1}, "config.in_channels"),
])
def test_config_errors_name_the_key(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _build(config)
