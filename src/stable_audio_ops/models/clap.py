"""``model_type: "clap"``: stable-audio-tools 0.0.20's own contrastive audio-text model.

Why it exists: 0.0.20 trains a CLAP on the latents of a pretransform (its ``sat_clap_text`` / ``sat_clap_audio``
conditioners and ARC's CLAP loss then use it), instead of LAION-CLAP's HTSAT on mel spectrograms.

Layout and state-dict keys are upstream's:

- ``pretransform.*`` (optional): turns audio into latents (:meth:`CLAP.get_audio_features`);
- ``audio_branch.*``: a :class:`~stable_audio_ops.models.transformer.ContinuousTransformer` over the latent frames
  (``audio_branch.transformer.*``), pooled by a learned ``audio_branch.cls_embedding`` token (``cls_prepend``) or
  by a mean over frames (``avg_pool``); with ``noise_config`` the transformer is adaLN-conditioned on the latents'
  noise level (``audio_branch.noise_features.weight``, ``audio_branch.to_noise_embed.*``);
- ``text_branch.model.*``: a RoBERTa encoder; its ``pooler_output`` is the text embedding;
- ``audio_projection.{0,2}.*`` / ``text_projection.{0,2}.*``: Linear-ReLU-Linear into ``joint_embed_dim``;
- ``logit_scale_a``: the learnable log inverse temperature, initialised to ``log(1 / 0.07)``.

Both embeddings are L2-normalised, so ``exp(logit_scale_a) * audio @ text.T`` are the contrastive logits.

Config (``model``): ``joint_embed_dim``, ``model_objective`` (``"clap"`` | ``"slap"``), ``pretransform``,
``audio: {context_length (1024), model: {type: "transformer", config: {embed_dim, embed_type, noise_config,
...ContinuousTransformer keys}}}``, ``text: {context_length (77), model: {type: "roberta", config: {name}}}``.

Differences from 0.0.20:

- ``model_objective`` is stored and validated but, as in 0.0.20, changes nothing: 0.0.20 has the pieces of a
  sigmoid ("SigLIP"-style) loss (``get_ground_truth`` with +1/-1 labels, ``get_logits`` with a bias) but never
  calls them, and trains both objectives with the same symmetric InfoNCE loss;
- the RoBERTa encoder loads from local files only: ``name`` is ``roberta-base`` in the local Hugging Face cache or
  a local model folder (0.0.20 downloads ``roberta-base`` and knows no other name); the width is read from the
  loaded model;
- a padding ``mask`` masks the mean pooling (``avg_pool``) as upstream, but not the attention: this version's
  transformer has no padding mask (upstream zeroes the padded frames' values inside attention).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.models.autoencoder_factory import create_pretransform_from_config
from stable_audio_ops.models.conditioner_base import _load_hf_encoder
from stable_audio_ops.models.dit import FourierFeatures
from stable_audio_ops.models.transformer import ContinuousTransformer

MODEL_OBJECTIVES = ("clap", "slap")
EMBED_TYPES = ("cls_prepend", "avg_pool")
NOISE_FEATURES_DIM = 256


class LatentTransformerAudioBranch(nn.Module):
    """Transformer over latent frames ``[B, C, T]`` -> one ``embed_dim`` vector per item.

    With ``noise_config`` (``{"embed_dim": 64, "interp_type": "linear"}``) the transformer takes the latents'
    noise level as its global condition (zero when not given: clean latents), so the branch can embed noised
    latents too (what ARC and 0.0.20's noise-augmented CLAP training feed it).
    """

    def __init__(self, embed_dim: int, embed_type: str = "cls_prepend", noise_config: Mapping[str, Any] | None = None,
                 max_length: int = 1024, **transformer_kwargs: Any):
        super().__init__()
        if embed_type not in EMBED_TYPES:
            raise ValueError(f"embed_type must be one of {', '.join(EMBED_TYPES)}, got {embed_type!r}")
        self.max_length = max_length
        self.noise_config = dict(noise_config) if noise_config is not None else None
        if self.noise_config is not None:
            noise_embed_dim = int(self.noise_config.get("embed_dim", 64))
            self.noise_features = FourierFeatures(1, NOISE_FEATURES_DIM)
            self.to_noise_embed = nn.Linear(NOISE_FEATURES_DIM, noise_embed_dim)
            transformer_kwargs["global_cond_dim"] = noise_embed_dim
        self.transformer = ContinuousTransformer(dim=embed_dim, **transformer_kwargs)
        self.embed_type = embed_type
        if embed_type == "cls_prepend":
            self.cls_embedding = nn.Parameter(torch.randn(1, 1, self.transformer.dim))
        self.embed_dim = self.transformer.dim

    def forward(self, latents: torch.Tensor, mask: torch.Tensor | None = None,
                noise_levels: torch.Tensor | None = None, return_hidden_states: bool = False) -> dict[str, Any]:
        noise_embed = None
        if self.noise_config is not None:
            if noise_levels is None:
                noise_levels = torch.zeros(latents.shape[0], device=latents.device)
            noise_embed = self.to_noise_embed(self.noise_features(noise_levels[:, None].to(latents.dtype)))
        tokens = latents.transpose(1, 2)
        if self.embed_type == "cls_prepend":
            cls = self.cls_embedding.expand(tokens.shape[0], -1, -1)
            output, info = self.transformer(tokens, prepend_embeds=cls, global_cond=noise_embed, return_info=True)
            embedding = output[:, 0, :]
        else:
            output, info = self.transformer(tokens, global_cond=noise_embed, return_info=True)
            if mask is not None:  # mean over the real frames only
                weights = mask.to(output.dtype).unsqueeze(-1)
                embedding = (output * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
            else:
                embedding = output.mean(dim=1)
        result: dict[str, Any] = {"embedding": embedding}
        if return_hidden_states:
            result["hidden_states"] = info["hidden_states"]
        return result


class RobertaTextBranch(nn.Module):
    """RoBERTa ``pooler_output`` of captions tokenized to ``max_length`` (padded, truncated)."""

    def __init__(self, tokenizer: Any, model: nn.Module, max_length: int):
        super().__init__()
        self.tokenizer = tokenizer
        self.model = model
        self.max_length = max_length
        self.embed_dim = int(model.config.hidden_size)

    def _tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        encoded = self.tokenizer(list(texts), return_tensors="pt", padding="max_length", max_length=self.max_length,
                                 truncation=True)
        return encoded["input_ids"].to(device), encoded["attention_mask"].to(device)

    def get_text_features(self, texts: Sequence[str], layer_ix: int = -2) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token hidden states of layer ``layer_ix`` and the attention mask (``use_text_features``)."""
        input_ids, attention_mask = self._tokens(texts)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out["hidden_states"][layer_ix], attention_mask

    def forward(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = self._tokens(texts)
        return {"embedding": self.model(input_ids=input_ids, attention_mask=attention_mask)["pooler_output"]}


def _projection(dim_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim), nn.ReLU(), nn.Linear(dim, dim))


class CLAP(nn.Module):
    """Audio and text branches projected into one normalised ``joint_embed_dim`` space (see the module doc)."""

    def __init__(self, joint_embed_dim: int, audio_branch: nn.Module, text_branch: nn.Module,
                 pretransform: nn.Module | None = None, model_objective: str = "clap"):
        super().__init__()
        if model_objective not in MODEL_OBJECTIVES:
            raise ValueError(f"model_objective must be one of {', '.join(MODEL_OBJECTIVES)}, got {model_objective!r}")
        self.joint_embed_dim = joint_embed_dim
        self.audio_branch = audio_branch
        self.text_branch = text_branch
        self.pretransform = pretransform
        self.text_projection = _projection(text_branch.embed_dim, joint_embed_dim)
        self.audio_projection = _projection(audio_branch.embed_dim, joint_embed_dim)
        self.model_objective = model_objective
        self.logit_scale_a = nn.Parameter(torch.full((), math.log(1 / 0.07)))

    def get_text_embedding(self, texts: Sequence[str]) -> torch.Tensor:
        """``[B, joint_embed_dim]`` unit vectors of captions."""
        return F.normalize(self.text_projection(self.text_branch(texts)["embedding"]), dim=-1)

    def get_audio_embedding(self, audio_features: torch.Tensor, **branch_kwargs: Any) -> torch.Tensor:
        """``[B, joint_embed_dim]`` unit vectors of latents ``[B, C, T]`` (``mask``, ``noise_levels`` optional)."""
        return F.normalize(self.audio_projection(self.audio_branch(audio_features, **branch_kwargs)["embedding"]),
                           dim=-1)

    def get_audio_features(self, audio: torch.Tensor) -> torch.Tensor:
        """Latents of audio ``[B, channels, samples]`` through the pretransform (an error without one)."""
        if self.pretransform is None:
            raise ValueError("this CLAP has no pretransform: pass latents to get_audio_embedding instead")
        return self.pretransform.encode(audio)


# --- building from a config --------------------------------------------------------------------------

def _build_transformer_audio_branch(node: ConfigNode, max_length: int) -> nn.Module:
    kwargs = dict(node.data)
    if "embed_dim" not in kwargs:
        raise node.error("missing required key (expected a positive int)", "embed_dim")
    node.choice("embed_type", EMBED_TYPES, "cls_prepend")
    node.get("noise_config", "an object", None)
    kwargs.setdefault("max_length", max_length)
    try:
        return LatentTransformerAudioBranch(**kwargs)
    except TypeError as exc:
        raise node.error(f"bad audio branch options: {exc}") from exc


def _build_roberta_text_branch(node: ConfigNode, max_length: int) -> nn.Module:
    check_known_keys(node, ("name",))
    name = node.get("name", "a string")
    tokenizer, model = _load_hf_encoder(name, "RobertaModel", "RoBERTa text encoder", node, "name")
    return RobertaTextBranch(tokenizer, model, max_length)


# branch type -> builder(node of the branch's ``config``, context_length)
AUDIO_BRANCHES = {"transformer": _build_transformer_audio_branch}
TEXT_BRANCHES = {"roberta": _build_roberta_text_branch}


def _branch(model: ConfigNode, key: str, registry: Mapping[str, Any], default_length: int) -> nn.Module:
    node = model.child(key)
    check_known_keys(node, ("context_length", "model"))
    length = node.get("context_length", "a positive int", default_length)
    info = node.child("model")
    check_known_keys(info, ("type", "config"))
    builder = lookup(dict(registry), info.get("type", "a string"), f"{key} branch type", info)
    return builder(info.child("config", {}), length)


def build_clap(root: ConfigNode, pretransform: nn.Module | None = None) -> CLAP:
    """The CLAP of a config's root node (``model_type: "clap"``, or a sat_clap conditioner's ``config``).

    ``pretransform`` (the diffusion model's, for conditioners with ``use_model_pretransform``) replaces the one
    ``model.pretransform`` describes."""
    model = root.child("model")
    check_known_keys(model, ("joint_embed_dim", "model_objective", "pretransform", "audio", "text"))
    joint_embed_dim = model.get("joint_embed_dim", "a positive int")
    objective = model.choice("model_objective", MODEL_OBJECTIVES, "clap")
    audio_branch = _branch(model, "audio", AUDIO_BRANCHES, 1024)
    text_branch = _branch(model, "text", TEXT_BRANCHES, 77)
    if pretransform is None and model.has("pretransform") and model.data["pretransform"] is not None:
        sample_rate = root.get("sample_rate", "a positive int")
        pretransform = create_pretransform_from_config(model.data["pretransform"], sample_rate,
                                                       model.child("pretransform"))
    return CLAP(joint_embed_dim, audio_branch, text_branch, pretransform=pretransform, model_objective=objective)


def create_clap_from_config(model_config: Mapping[str, Any], pretransform: nn.Module | None = None,
                            source: str = "<clap config>", path: str = "") -> CLAP:
    """Upstream's ``create_clap_from_config``: build a CLAP from a dict holding ``model`` (and ``sample_rate``
    when it has a pretransform)."""
    return build_clap(ConfigNode(dict(model_config), source, path), pretransform=pretransform)


__all__ = ["AUDIO_BRANCHES", "CLAP", "EMBED_TYPES", "MODEL_OBJECTIVES", "TEXT_BRANCHES",
           "LatentTransformerAudioBranch", "RobertaTextBranch", "build_clap", "create_clap_from_config"]
