"""``lm``: a MusicGen-style autoregressive language model over the tokens of a discrete pretransform.

Layout and config keys are stable-audio-tools 0.0.20's (``models/lm.py``, ``models/lm_backbone.py``), so an
upstream config builds here and checkpoints keep their key names:

- :class:`AudioLanguageModelWrapper` holds ``pretransform`` (frozen; ``pretransform.model.*`` for an
  autoencoder), ``conditioner`` (``conditioner.conditioners.*``) and ``lm``;
- :class:`AudioLanguageModel` sums one embedding per codebook (``lm.embeds.{k}.weight``, ``codebook_size + 1``
  rows: the last one is the special token of the codebook pattern), runs the causal backbone
  (``lm.backbone.*``) and predicts every codebook with its own head (``lm.quantizer_heads.{k}.{weight,bias}``);
- :class:`LMBackbone` (``lm.type: continuous_transformer``) is the project's causal
  :class:`~stable_audio_ops.models.transformer.ContinuousTransformer` (``lm.backbone.model.*``) with optional
  projections of prepend (``lm.backbone.to_prepend_embed.*``) and cross-attention conditioning
  (``lm.backbone.to_cross_attn_embed.*``).

Codes are ``[B, K, T]`` (K codebooks); the pretransform's own token layout (rvq's ``[B, T, Q]``, dac_rvq's
``[B, Q, T]``, see :mod:`.discrete_bottlenecks`) is converted on the way in and out, so pre-encoded token
files and ``decode_tokens`` keep the pretransform's layout. Sequences are interleaved by the
``lm.codebook_pattern`` (:mod:`.codebook_patterns`). Generation lives in
:mod:`stable_audio_ops.inference.lm_generation`, training in :mod:`stable_audio_ops.training.lm`.

0.0.20's LM cannot run; differences made to make it work:
- the backbone is the project's transformer, not ``x_transformers`` (imported by 0.0.20 but not a
  dependency), and no ``mask``/``prepend_mask`` reach the blocks (0.0.20 passes kwargs its blocks reject):
  padded prepend and cross-attention tokens are attended like the others (the project's transformer takes no
  attention masks);
- cross-attention conditioning without ``project_cross_attn_cond`` is cast to the model's dtype (0.0.20
  indexes the ``nn.Identity`` it uses there and raises);
- cross-attention is not causal: 0.0.20 builds its cross-attention layers with the self-attention's
  ``causal`` flag, so sequence position ``i`` would only see the first ``i + 1`` conditioning tokens (and a
  one-token generation step all of them);
- ``global_cond_ids`` reach the transformer's adaLN global conditioning (``lm.config.global_cond_dim`` must
  match their width); 0.0.20 accepts them and drops them in the backbone;
- codes from rvq / dithered_fsq autoencoders (``[B, T, Q]``) are transposed to ``[B, K, T]``: 0.0.20 feeds
  them to the pattern as they are;
- there is no key/value cache: each generation step runs the whole prefix (0.0.20's transformer backbone
  caches nothing either: its ``use_generation_cache`` is off and its cache hooks are no-ops).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.models.autoencoder_factory import create_pretransform_from_config
from stable_audio_ops.models.codebook_patterns import CODEBOOK_PATTERNS, Pattern, get_pattern
from stable_audio_ops.models.conditioners import (
    MultiConditioner,
    create_multi_conditioner_from_conditioning_config,
)
from stable_audio_ops.models.transformer import ContinuousTransformer, TransformerBlock


@dataclass
class LMOutput:
    """Logits aligned with the codes they predict ``[B, K, T, codebook_size]`` and the ``[B, K, T]`` mask of
    codes that have a prediction (no shift needed for the cross-entropy)."""

    logits: torch.Tensor
    mask: torch.Tensor


def _projection(dim_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim, bias=False), nn.SiLU(), nn.Linear(dim, dim, bias=False))


class LMBackbone(nn.Module):
    """The causal transformer over summed codebook embeddings (0.0.20's ``ContinuousTransformerAudioLMBackbone``).

    ``forward(x [B, S, embed_dim], prepend_cond, cross_attn_cond, global_cond) -> [B, S, embed_dim]``; prepend
    tokens are placed before the sequence (every position sees them) and stripped from the output.
    """

    def __init__(self, embed_dim: int, cross_attn_cond_dim: int = 0, prepend_cond_dim: int = 0,
                 project_cross_attn_cond: bool = False, **transformer_kwargs: Any):
        super().__init__()
        self.embed_dim = embed_dim
        self.model = ContinuousTransformer(
            dim=embed_dim, dim_in=embed_dim, dim_out=embed_dim, cross_attend=cross_attn_cond_dim > 0,
            cond_token_dim=embed_dim if project_cross_attn_cond else cross_attn_cond_dim, causal=True,
            **transformer_kwargs)
        for layer in self.model.layers:  # cross-attention sees every conditioning token (see module doc)
            if layer.cross_attend:
                layer.cross_attn.causal = False
        if prepend_cond_dim > 0:
            self.to_prepend_embed = _projection(prepend_cond_dim, embed_dim)
        self.to_cross_attn_embed: nn.Module = nn.Identity()
        if cross_attn_cond_dim > 0 and project_cross_attn_cond:
            self.to_cross_attn_embed = _projection(cross_attn_cond_dim, embed_dim)

    def forward(self, x: torch.Tensor, prepend_cond: torch.Tensor | None = None,
                cross_attn_cond: torch.Tensor | None = None, global_cond: torch.Tensor | None = None) -> torch.Tensor:
        dtype = x.dtype
        prepend_length = 0
        if prepend_cond is not None:
            prepend_cond = self.to_prepend_embed(prepend_cond.to(dtype))
            prepend_length = prepend_cond.shape[1]
        if cross_attn_cond is not None:
            cross_attn_cond = self.to_cross_attn_embed(cross_attn_cond.to(dtype))
        if self.model.global_cond_embedder is None:
            global_cond = None
        elif global_cond is not None:
            global_cond = global_cond.to(dtype)
        out = self.model(x, context=cross_attn_cond, prepend_embeds=prepend_cond, global_cond=global_cond)
        return out[:, prepend_length:, :]


class AudioLanguageModel(nn.Module):
    """Per-codebook embeddings (summed) -> causal backbone -> per-codebook heads, over pattern sequences."""

    def __init__(self, backbone: LMBackbone, num_quantizers: int, codebook_size: int, codebook_pattern: str = "delay"):
        super().__init__()
        if codebook_pattern not in CODEBOOK_PATTERNS:
            raise ValueError(f"unknown codebook pattern {codebook_pattern!r}; known: {', '.join(CODEBOOK_PATTERNS)}")
        self.backbone = backbone
        self.num_quantizers = num_quantizers
        self.codebook_size = codebook_size
        self.codebook_pattern = codebook_pattern
        self.masked_token_id = codebook_size  # the pattern's special token: the extra embedding row
        dim = backbone.embed_dim
        self.embeds = nn.ModuleList([nn.Embedding(codebook_size + 1, dim) for _ in range(num_quantizers)])
        self.quantizer_heads = nn.ModuleList([nn.Linear(dim, codebook_size) for _ in range(num_quantizers)])

    def pattern(self, timesteps: int) -> Pattern:
        return get_pattern(self.codebook_pattern, self.num_quantizers, timesteps)

    def forward(self, sequence: torch.Tensor, prepend_cond: torch.Tensor | None = None,
                cross_attn_cond: torch.Tensor | None = None, global_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Pattern sequence ``[B, K, S]`` (codes and special tokens) -> logits ``[B, K, S, codebook_size]``; the
        logits at step ``s`` predict the codes of step ``s + 1``."""
        if sequence.dim() != 3 or sequence.shape[1] != self.num_quantizers:
            raise ValueError(f"expected a [batch, {self.num_quantizers}, steps] sequence, got {tuple(sequence.shape)}")
        x = sum(embed(sequence[:, k]) for k, embed in enumerate(self.embeds))
        out = self.backbone(x, prepend_cond=prepend_cond, cross_attn_cond=cross_attn_cond, global_cond=global_cond)
        return torch.stack([head(out) for head in self.quantizer_heads], dim=1)

    def compute_logits(self, codes: torch.Tensor, **conditioning: torch.Tensor | None) -> LMOutput:
        """Teacher-forced logits for codes ``[B, K, T]`` (training): the valid steps of the pattern sequence
        go through the model and the outputs are re-aligned with the codes they predict."""
        batch, _, timesteps = codes.shape
        pattern = self.pattern(timesteps)
        sequence, _ = pattern.build_sequence(codes, self.masked_token_id, valid_only=True)
        logits, mask = pattern.revert_logits(self(sequence, **conditioning), float("nan"), valid_only=True)
        return LMOutput(logits=logits, mask=mask[None].expand(batch, -1, -1))


def _drop_to_null(cond: torch.Tensor | None, drop: torch.Tensor) -> torch.Tensor | None:
    """Items where ``drop`` is true get the null (all-zero) conditioning."""
    if cond is None:
        return None
    return torch.where(drop.view(-1, *([1] * (cond.dim() - 1))), torch.zeros_like(cond), cond)


class AudioLanguageModelWrapper(nn.Module):
    """Pretransform (tokenizer) + conditioner + :class:`AudioLanguageModel` (see the module docstring)."""

    def __init__(self, pretransform: nn.Module, lm: AudioLanguageModel, sample_rate: int, min_input_length: int,
                 conditioner: MultiConditioner | None = None, cross_attn_cond_ids: list[str] | tuple = (),
                 prepend_cond_ids: list[str] | tuple = (), global_cond_ids: list[str] | tuple = ()):
        super().__init__()
        if not getattr(pretransform, "is_discrete", False):
            raise ValueError("an lm model needs a discrete pretransform")
        self.pretransform = pretransform
        self.pretransform.requires_grad_(False).eval()
        self.conditioner = conditioner
        self.lm = lm
        self.sample_rate = sample_rate
        self.min_input_length = min_input_length
        self.num_quantizers = lm.num_quantizers
        self.codebook_size = lm.codebook_size
        self.cross_attn_cond_ids = list(cross_attn_cond_ids)
        self.prepend_cond_ids = list(prepend_cond_ids)
        self.global_cond_ids = list(global_cond_ids)

    # --- tokens <-> codes [B, K, T] -------------------------------------------------------------------
    @property
    def tokens_layout(self) -> str:
        return getattr(self.pretransform, "tokens_layout", "b q t")

    def codes_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens in the pretransform's layout (``tokenize`` output, pre-encoded token files) -> codes ``[B, K, T]``."""
        tokens = tokens.round().long() if tokens.is_floating_point() else tokens.long()
        codes = tokens.transpose(1, 2) if self.tokens_layout == "b t q" else tokens
        if codes.dim() != 3 or codes.shape[1] != self.num_quantizers:
            raise ValueError(f"expected tokens with {self.num_quantizers} codebooks in layout {self.tokens_layout!r}, "
                             f"got shape {tuple(tokens.shape)}")
        return codes

    def tokens_from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.transpose(1, 2) if self.tokens_layout == "b t q" else codes

    def tokenize(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio -> codes ``[B, K, T]`` through the frozen pretransform."""
        with torch.no_grad():
            return self.codes_from_tokens(self.pretransform.tokenize(audio))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, T]`` -> audio through the pretransform's ``decode_tokens``."""
        with torch.no_grad():
            return self.pretransform.decode_tokens(self.tokens_from_codes(codes))

    # --- conditioning ----------------------------------------------------------------------------------
    def conditioning_inputs(self, cond: Mapping[str, Any] | None) -> dict[str, torch.Tensor | None]:
        """Conditioner outputs -> the model's ``prepend_cond`` / ``cross_attn_cond`` / ``global_cond``
        (concatenated over tokens, resp. channels, as upstream)."""
        cond = cond or {}
        out: dict[str, torch.Tensor | None] = {"prepend_cond": None, "cross_attn_cond": None, "global_cond": None}
        if self.cross_attn_cond_ids:
            out["cross_attn_cond"] = torch.cat([cond[k][0] for k in self.cross_attn_cond_ids], dim=1)
        if self.prepend_cond_ids:
            out["prepend_cond"] = torch.cat([cond[k][0] for k in self.prepend_cond_ids], dim=1)
        if self.global_cond_ids:
            global_cond = torch.cat([cond[k][0] for k in self.global_cond_ids], dim=-1)
            out["global_cond"] = global_cond.squeeze(1) if global_cond.dim() == 3 else global_cond
        return out

    def compute_logits(self, codes: torch.Tensor, condition_tensors: Mapping[str, Any] | None = None,
                       cfg_dropout_prob: float = 0.0) -> LMOutput:
        """Training logits; each item's conditioning is replaced by the null (zero) one with probability
        ``cfg_dropout_prob`` (classifier-free guidance dropout, one draw per item and conditioning kind)."""
        inputs = self.conditioning_inputs(condition_tensors)
        if cfg_dropout_prob > 0.0:
            for key, value in inputs.items():
                if value is not None:
                    drop = torch.rand(value.shape[0], device=value.device) < cfg_dropout_prob
                    inputs[key] = _drop_to_null(value, drop)
        return self.lm.compute_logits(codes, **inputs)

    def guided_logits(self, sequence: torch.Tensor, inputs: Mapping[str, torch.Tensor | None],
                      cfg_scale: float = 1.0) -> torch.Tensor:
        """Logits ``[B, K, S, C]`` for a pattern sequence; with ``cfg_scale != 1`` and conditioning, the batch
        runs twice (conditioned, null) and ``uncond + (cond - uncond) * cfg_scale`` is returned."""
        guided = cfg_scale != 1.0 and any(v is not None for v in inputs.values())
        if not guided:
            return self.lm(sequence, **inputs)
        doubled = {k: None if v is None else torch.cat([v, torch.zeros_like(v)]) for k, v in inputs.items()}
        cond, uncond = self.lm(torch.cat([sequence, sequence]), **doubled).chunk(2)
        return uncond + (cond - uncond) * cfg_scale


# --- config -> model -----------------------------------------------------------------------------------

_OWN_KEYS = ("embed_dim", "cross_attn_cond_dim", "prepend_cond_dim", "project_cross_attn_cond")
# set by the backbone itself; the rest of ContinuousTransformer's / TransformerBlock's arguments pass through
_FIXED = {"self", "dim", "dim_in", "dim_out", "cross_attend", "cond_token_dim", "causal", "dim_context",
          "block_kwargs"}


def _transformer_keys() -> tuple[str, ...]:
    names = set(inspect.signature(ContinuousTransformer.__init__).parameters)
    names |= set(inspect.signature(TransformerBlock.__init__).parameters)
    return tuple(sorted(names - _FIXED))


def build_continuous_transformer_backbone(cfg: ConfigNode) -> LMBackbone:
    """``lm.type: continuous_transformer``: ``lm.config`` holds the backbone keys + ContinuousTransformer kwargs
    (``depth``, ``dim_heads``, ...); ``causal`` is always true and cannot be set."""
    if cfg.has("causal"):
        raise cfg.error("the lm backbone is always causal; remove the key", "causal")
    check_known_keys(cfg, _OWN_KEYS + _transformer_keys())
    kwargs = {k: v for k, v in cfg.data.items() if k not in _OWN_KEYS}
    try:
        return LMBackbone(embed_dim=cfg.get("embed_dim", "a positive int"),
                          cross_attn_cond_dim=cfg.get("cross_attn_cond_dim", "a non-negative int", 0),
                          prepend_cond_dim=cfg.get("prepend_cond_dim", "a non-negative int", 0),
                          project_cross_attn_cond=cfg.get("project_cross_attn_cond", "a bool", False), **kwargs)
    except (TypeError, ValueError) as err:
        raise cfg.error(str(err)) from err


# ``model.lm.type`` -> builder(node of ``model.lm.config``)
LM_BACKBONES = {"continuous_transformer": build_continuous_transformer_backbone}

_LM_KEYS = ("type", "config", "codebook_pattern", "cross_attention_cond_ids", "prepend_cond_ids", "global_cond_ids")


def _cond_ids(lm: ConfigNode, key: str, widths: Mapping[str, int]) -> list[str]:
    ids = lm.get(key, "a list of strings", [])
    for i, cid in enumerate(ids):
        if cid not in widths:
            known = ", ".join(widths) or "(no model.conditioning block)"
            raise lm.child(key).error(f"{cid!r} is not a configured conditioner id; configured: {known}", i)
    return ids


def _check_widths(cfg: ConfigNode, ids: Mapping[str, list[str]], widths: Mapping[str, int]) -> None:
    """Conditioner widths against the backbone's ``cross_attn_cond_dim`` / ``prepend_cond_dim`` /
    ``global_cond_dim`` (a mismatch would otherwise fail inside a matmul at the first batch)."""
    for ids_key, dim_key in (("cross_attention_cond_ids", "cross_attn_cond_dim"),
                             ("prepend_cond_ids", "prepend_cond_dim")):
        dim = cfg.get(dim_key, "a non-negative int", 0)
        if ids[ids_key] and dim == 0:
            raise cfg.error(f"is 0 but model.lm.{ids_key} is not empty", dim_key)
        for cid in ids[ids_key]:
            if widths[cid] != dim:
                raise cfg.error(f"is {dim} but conditioner {cid!r} outputs {widths[cid]}-dim tokens", dim_key)
    global_ids = ids["global_cond_ids"]
    if global_ids:
        total = sum(widths[c] for c in global_ids)
        dim = cfg.get("global_cond_dim", "a positive int", None)
        if dim != total:
            raise cfg.error(f"must be {total} (the width of the global conditioners {global_ids}), got {dim}",
                            "global_cond_dim")


def build_lm(root: ConfigNode) -> AudioLanguageModelWrapper:
    """``model_type: lm`` (root node of the whole model config)."""
    sample_rate = root.get("sample_rate", "a positive int")
    model = root.child("model")
    check_known_keys(model, ("pretransform", "conditioning", "lm"))
    pretransform_node = model.child("pretransform")
    pretransform = create_pretransform_from_config(pretransform_node.data, sample_rate, pretransform_node)
    if not getattr(pretransform, "is_discrete", False) or getattr(pretransform, "num_quantizers", None) is None:
        raise pretransform_node.error("an lm model needs a discrete pretransform (an autoencoder with an rvq, "
                                      "dac_rvq or fsq bottleneck, dac_pretrained or audiocraft_pretrained)")

    lm = model.child("lm")
    check_known_keys(lm, _LM_KEYS)
    pattern = lm.choice("codebook_pattern", CODEBOOK_PATTERNS, "delay")
    builder = lookup(LM_BACKBONES, lm.get("type", "a string"), "lm type", lm)
    cfg = lm.child("config")
    backbone = builder(cfg)

    conditioner = None
    if model.has("conditioning") and model.data["conditioning"] is not None:
        conditioner = create_multi_conditioner_from_conditioning_config(
            model.data["conditioning"], model.child("conditioning"), pretransform=pretransform)
    widths = {} if conditioner is None else {
        cid: int(getattr(c, "output_dim", 0)) for cid, c in conditioner.conditioners.items()}
    ids = {key: _cond_ids(lm, key, widths)
           for key in ("cross_attention_cond_ids", "prepend_cond_ids", "global_cond_ids")}
    _check_widths(cfg, ids, widths)

    num_quantizers, codebook_size = int(pretransform.num_quantizers), int(pretransform.codebook_size)
    if pattern == "musiclm" and num_quantizers % 2:
        raise lm.error(f"musiclm groups codebooks in pairs; the pretransform has {num_quantizers}", "codebook_pattern")
    language_model = AudioLanguageModel(backbone, num_quantizers, codebook_size, codebook_pattern=pattern)
    return AudioLanguageModelWrapper(
        pretransform, language_model, sample_rate=sample_rate, min_input_length=pretransform.downsampling_ratio,
        conditioner=conditioner, cross_attn_cond_ids=ids["cross_attention_cond_ids"],
        prepend_cond_ids=ids["prepend_cond_ids"], global_cond_ids=ids["global_cond_ids"])


__all__ = ["LM_BACKBONES", "AudioLanguageModel", "AudioLanguageModelWrapper", "LMBackbone", "LMOutput", "build_lm",
           "build_continuous_transformer_backbone"]
