"""ContinuousTransformer building blocks: rotary maths, attention layouts, norms, block options."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.models.transformer import (
    Attention,
    ConformerModule,
    ContinuousTransformer,
    LayerNorm,
    RotaryEmbedding,
    apply_rotary_pos_emb,
)


def _randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Upstream zero-initialises branch outputs; give every parameter values so all paths count."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return module


def test_rotary_rotates_only_leading_features_and_encodes_relative_position() -> None:
    rot = RotaryEmbedding(32)
    freqs = rot.forward_from_seq_len(10)
    assert freqs.shape == (10, 32)
    q = torch.randn(1, 1, 10, 64)
    k = torch.randn(1, 1, 10, 64)
    q_rot = apply_rotary_pos_emb(q, freqs)
    # partial rotary: features past rot_dim pass through, position 0 is the identity
    torch.testing.assert_close(q_rot[..., 32:], q[..., 32:])
    torch.testing.assert_close(q_rot[..., 0, :], q[..., 0, :])
    # the same vectors at shifted positions give the same dot product (only the offset matters)
    same_q, same_k = q[..., 2:3, :].expand(1, 1, 10, 64), k[..., 5:6, :].expand(1, 1, 10, 64)
    qr, kr = apply_rotary_pos_emb(same_q, freqs), apply_rotary_pos_emb(same_k, freqs)
    dot_a = (qr[..., 1, :32] * kr[..., 4, :32]).sum()
    dot_b = (qr[..., 4, :32] * kr[..., 7, :32]).sum()
    torch.testing.assert_close(dot_a, dot_b, rtol=1e-5, atol=1e-5)


def test_cross_attention_with_narrow_context_shares_key_value_heads() -> None:
    attn = _randomize(Attention(64, dim_heads=32, dim_context=32))
    assert (attn.num_heads, attn.kv_heads) == (2, 1)
    assert attn.to_kv.weight.shape == (64, 32)
    x, ctx = torch.randn(2, 5, 64), torch.randn(2, 3, 32)
    out = attn(x, context=ctx)

    q = attn.to_q(x).reshape(2, 5, 2, 32).transpose(1, 2)
    k, v = attn.to_kv(ctx).chunk(2, dim=-1)
    scores = torch.einsum("bhqd,bkd->bhqk", q, k) / 32 ** 0.5
    manual = torch.einsum("bhqk,bkd->bhqd", scores.softmax(-1), v).transpose(1, 2).reshape(2, 5, 64)
    torch.testing.assert_close(out, attn.to_out(manual), rtol=1e-5, atol=1e-5)


def test_attention_rejects_head_layouts_that_cannot_share() -> None:
    with pytest.raises(ValueError, match="key/value heads"):
        Attention(64, dim_heads=16, dim_context=48)  # 4 query heads, 3 kv heads


@pytest.mark.parametrize("qk_norm", ["l2", "ln", "rms"])
def test_qk_norm_variants_run_and_ln_adds_upstream_keys(qk_norm: str) -> None:
    attn = _randomize(Attention(64, dim_heads=32, qk_norm=qk_norm))
    out = attn(torch.randn(1, 4, 64))
    assert out.shape == (1, 4, 64) and torch.isfinite(out).all()
    if qk_norm == "ln":
        assert {"q_norm.weight", "q_norm.bias", "k_norm.weight", "k_norm.bias"} <= set(attn.state_dict())
    with pytest.raises(ValueError, match="qk_norm"):
        Attention(64, qk_norm="layernorm")


def test_biasless_layernorm_keeps_beta_as_persistent_buffer() -> None:
    norm = LayerNorm(8)
    assert "beta" in norm.state_dict() and "beta" not in dict(norm.named_parameters())
    x = torch.randn(3, 8)
    torch.testing.assert_close(norm(x), torch.nn.functional.layer_norm(x, (8,)))


def test_prepend_and_memory_tokens_and_zero_initialised_branches() -> None:
    tf = ContinuousTransformer(64, 2, dim_in=6, dim_out=6, dim_heads=32, num_memory_tokens=3)
    x, prepend = torch.randn(2, 10, 6), torch.randn(2, 4, 64)
    out = tf(x, prepend_embeds=prepend)
    assert out.shape == (2, 14, 6)  # memory tokens stripped, prepend tokens kept for the caller
    # fresh blocks have zero branch outputs: the stack is project_out(project_in(x))
    seq = torch.cat([prepend, tf.project_in(x)], dim=1)
    torch.testing.assert_close(out, tf.project_out(seq))


def test_final_cross_attn_ix_limits_cross_attention_layers() -> None:
    tf = ContinuousTransformer(64, 3, dim_heads=32, cross_attend=True, cond_token_dim=64, final_cross_attn_ix=1)
    assert [layer.cross_attend for layer in tf.layers] == [True, True, False]
    assert not any(k.startswith("layers.2.cross_attn") for k in tf.state_dict())


def test_adaln_global_conditioning_changes_the_output() -> None:
    tf = _randomize(ContinuousTransformer(64, 2, dim_heads=32, global_cond_dim=16))
    assert "global_cond_embedder.2.weight" in tf.state_dict()
    assert tf.layers[0].to_scale_shift_gate.shape == (6 * 64,)
    x = torch.randn(2, 5, 64)
    a = tf(x, global_cond=torch.randn(2, 16))
    b = tf(x, global_cond=torch.randn(2, 16))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["use_sinusoidal_emb", "use_abs_pos_emb"])
def test_additive_position_embeddings(kind: str) -> None:
    tf = _randomize(ContinuousTransformer(64, 1, dim_heads=32, rotary_pos_emb=False, **{kind: True}))
    x = torch.zeros(1, 6, 64)
    out = tf(x)
    # identical inputs at every position only differ through the position embedding
    assert (out[0, 0] - out[0, 3]).abs().max() > 1e-4


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = _randomize(ContinuousTransformer(64, 2, dim_in=4, dim_out=4, dim_heads=32))
    ckpt = ContinuousTransformer(64, 2, dim_in=4, dim_out=4, dim_heads=32, use_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 7, 4)
    grads = []
    for model in (plain.train(), ckpt.train()):
        model.zero_grad()
        model(x).pow(2).sum().backward()
        grads.append(model.layers[0].self_attn.to_qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_conformer_module_mixes_only_neighbouring_frames() -> None:
    """The conformer branch is a k17 depthwise conv: a change at frame 0 reaches frames 0..8 only, so it
    adds local context without leaking across the sequence (and without bias terms, as upstream)."""
    module = _randomize(ConformerModule(32)).eval()
    x = torch.randn(1, 40, 32)
    y = x.clone()
    y[:, 0] += 1.0
    with torch.no_grad():
        changed = (module(x) - module(y)).abs().amax(dim=-1)[0]
    assert (changed[:9] > 0).all() and (changed[9:] == 0).all()
    assert module.depthwise_conv.bias is None and module.pointwise_conv_2.bias is None
    block = ContinuousTransformer(32, 1, dim_heads=32, conformer=True)
    assert "layers.0.conformer.mid_norm.beta" in block.state_dict()
