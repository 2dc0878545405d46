"""DiffusionTransformer: conditioning paths, patching, guidance switches (CFG, APG, interval, negative)."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.models.dit import DiffusionTransformer, apg_project


def _dit(seed: int = 0, **kw) -> DiffusionTransformer:
    torch.manual_seed(seed)
    args = {"io_channels": 4, "embed_dim": 64, "depth": 2, "num_heads": 2, "cond_token_dim": 32,
            "global_cond_dim": 16}
    args.update(kw)
    model = DiffusionTransformer(**args)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # leave upstream's zero init behind so every path contributes
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def _inputs(batch: int = 2, frames: int = 12):
    torch.manual_seed(42)
    return (torch.randn(batch, 4, frames), torch.tensor([0.3, 0.7])[:batch], torch.randn(batch, 3, 32),
            torch.randn(batch, 16))


def test_state_dict_keys_follow_upstream_names() -> None:
    keys = set(_dit(prepend_cond_dim=8).state_dict())
    for key in ("timestep_features.weight", "to_timestep_embed.0.bias", "to_cond_embed.2.weight",
                "to_global_embed.0.weight", "to_prepend_embed.0.weight", "preprocess_conv.weight",
                "postprocess_conv.weight", "transformer.rotary_pos_emb.inv_freq",
                "transformer.layers.1.cross_attn.to_kv.weight"):
        assert key in keys, key


@pytest.mark.parametrize("patch_size", [1, 2])
def test_output_shape_and_patching(patch_size: int) -> None:
    model = _dit(patch_size=patch_size)
    x, t, cond, glob = _inputs()
    with torch.no_grad():
        out = model(x, t, cross_attn_cond=cond, global_embed=glob)
    assert out.shape == x.shape


def test_patching_keeps_frames_local() -> None:
    """With patch_size 2, changing frame 0 may only change the output through attention, never move it:
    a model without attention mixing (depth 0) must leave other patches untouched."""
    model = _dit(patch_size=2, depth=0, cond_token_dim=0, global_cond_dim=0)
    x, t, _, _ = _inputs()
    with torch.no_grad():
        a = model(x, t)
        x2 = x.clone()
        x2[:, :, 0] += 1.0
        b = model(x2, t)
    changed = (a - b).abs().amax(dim=(0, 1)) > 1e-6
    assert changed[:2].any() and not changed[2:].any()


def test_input_concat_is_resized_to_the_input_length() -> None:
    model = _dit(input_concat_dim=3)
    x, t, cond, glob = _inputs()
    short = torch.randn(2, 3, 6)
    with torch.no_grad():
        a = model(x, t, cross_attn_cond=cond, global_embed=glob, input_concat_cond=short)
        b = model(x, t, cross_attn_cond=cond, global_embed=glob, input_concat_cond=short.repeat_interleave(2, -1))
    torch.testing.assert_close(a, b)


def test_adaln_and_input_concat_timestep_variants() -> None:
    x, t, cond, glob = _inputs()
    ada = _dit(global_cond_type="adaLN")
    assert "transformer.global_cond_embedder.0.weight" in ada.state_dict()
    ts = _dit(timestep_cond_type="input_concat", timestep_embed_dim=8)
    assert ts.preprocess_conv.weight.shape[0] == 4 + 8
    with torch.no_grad():
        for model in (ada, ts):
            out = model(x, t, cross_attn_cond=cond, global_embed=glob)
            other = model(x, t.flip(0), cross_attn_cond=cond, global_embed=glob)
            assert out.shape == x.shape and (out - other).abs().max() > 1e-4  # t matters


def test_cross_attention_mask_is_ignored_like_upstream() -> None:
    model = _dit()
    x, t, cond, glob = _inputs()
    with torch.no_grad():
        a = model(x, t, cross_attn_cond=cond, global_embed=glob)
        b = model(x, t, cross_attn_cond=cond, cross_attn_cond_mask=torch.zeros(2, 3), global_embed=glob)
    torch.testing.assert_close(a, b)


def test_vanilla_cfg_matches_the_textbook_formula_for_both_objectives() -> None:
    x, t, cond, glob = _inputs()
    for objective in ("v", "rectified_flow"):
        model = _dit(diffusion_objective=objective)
        with torch.no_grad():
            c = model(x, t, cross_attn_cond=cond, global_embed=glob)
            u = model(x, t, cross_attn_cond=torch.zeros_like(cond), global_embed=glob)
            guided = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=3.0, apg_scale=0.0)
        # on outputs, vanilla CFG in denoised space is the same linear combination (alpha, sigma cancel)
        torch.testing.assert_close(guided, u + (c - u) * 3.0, rtol=1e-4, atol=1e-4)


def test_apg_removes_the_part_parallel_to_the_conditional_estimate() -> None:
    v0, v1 = torch.randn(3, 4, 10), torch.randn(3, 4, 10)
    parallel, orthogonal = apg_project(v0, v1)
    torch.testing.assert_close(parallel + orthogonal, v0)
    assert (orthogonal * v1).sum(dim=(1, 2)).abs().max() < 1e-5
    model = _dit()
    x, t, cond, glob = _inputs()
    with torch.no_grad():
        apg = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=5.0)
        vanilla = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=5.0, apg_scale=0.0)
        half = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=5.0, apg_scale=0.5)
    assert (apg - vanilla).abs().max() > 1e-3
    torch.testing.assert_close(half, 0.5 * (apg + vanilla), rtol=1e-4, atol=1e-4)  # linear in apg_scale


def test_cfg_interval_and_missing_conditioning_skip_guidance() -> None:
    model = _dit()
    x, t, cond, glob = _inputs()
    with torch.no_grad():
        plain = model(x, t, cross_attn_cond=cond, global_embed=glob)
        # v objective: sigma = sin(pi t / 2) of the first item (0.45) is outside [0.9, 1]
        outside = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=6.0, cfg_interval=(0.9, 1.0))
        no_tokens = model(x, t, global_embed=glob, cfg_scale=6.0)
        unguided_no_tokens = model(x, t, global_embed=glob)
    torch.testing.assert_close(outside, plain)
    torch.testing.assert_close(no_tokens, unguided_no_tokens)


def test_negative_conditioning_replaces_the_null_tokens() -> None:
    model = _dit()
    x, t, cond, glob = _inputs()
    neg = torch.randn_like(cond)
    with torch.no_grad():
        zero_neg = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=4.0,
                         negative_cross_attn_cond=torch.zeros_like(cond))
        default = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=4.0)
        with_neg = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=4.0, negative_cross_attn_cond=neg)
        masked_out = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=4.0,
                           negative_cross_attn_cond=neg, negative_cross_attn_mask=torch.zeros(2, 3))
    torch.testing.assert_close(zero_neg, default)
    assert (with_neg - default).abs().max() > 1e-3
    torch.testing.assert_close(masked_out, default)  # masked negative tokens become null tokens


def test_cfg_rescale_changes_output_and_cfg_dropout_drops_tokens_in_training() -> None:
    model = _dit()
    x, t, cond, glob = _inputs()
    with torch.no_grad():
        a = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=4.0)
        b = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_scale=4.0, scale_phi=0.7)
        dropped = model(x, t, cross_attn_cond=cond, global_embed=glob, cfg_dropout_prob=1.0)
        null = model(x, t, cross_attn_cond=torch.zeros_like(cond), global_embed=glob)
    assert (a - b).abs().max() > 1e-4
    torch.testing.assert_close(dropped, null)


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="diffusion_objective"):
        DiffusionTransformer(io_channels=4, embed_dim=64, num_heads=2, diffusion_objective="eps")
    with pytest.raises(ValueError, match="timestep_embed_dim"):
        DiffusionTransformer(io_channels=4, embed_dim=64, num_heads=2, timestep_cond_type="input_concat")
    with pytest.raises(ValueError, match="causal"):
        DiffusionTransformer(io_channels=4, embed_dim=64, num_heads=2, causal=True)


def test_step_invariants_are_computed_once_per_generation_with_bitwise_equal_outputs() -> None:
    """Inside reuse_step_invariants the conditioning's keys/values are projected at the first call only;
    what the model returns at every call is exactly what it returns without the cache."""
    model = _dit(prepend_cond_dim=8, cross_attn_rotary_pos_emb=False)
    x, t, cond, glob = _inputs()
    negative, prepend = torch.randn(2, 3, 32), torch.randn(2, 2, 8)
    kw = {"cross_attn_cond": cond, "negative_cross_attn_cond": negative, "global_embed": glob,
          "prepend_cond": prepend, "cfg_scale": 4.0}
    steps = [(x * (1 + i), t * (1 - 0.2 * i)) for i in range(4)]
    with torch.no_grad():
        expected = [model(xi, ti, **kw) for xi, ti in steps]
        kv_calls = []
        hooks = [layer.cross_attn.to_kv.register_forward_hook(lambda *a: kv_calls.append(1))
                 for layer in model.transformer.layers]
        with model.reuse_step_invariants() as cache:
            got = [model(xi, ti, **kw) for xi, ti in steps]
        for hook in hooks:
            hook.remove()
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert len(kv_calls) == len(model.transformer.layers)  # once per layer, not once per step
    assert cache.hits > 0 and not model._step_caches  # dropped after the generation
    with torch.no_grad():
        assert torch.equal(model(*steps[0], **{**kw, "cross_attn_cond": cond + 1}),
                           _dit(prepend_cond_dim=8)(*steps[0], **{**kw, "cross_attn_cond": cond + 1}))
