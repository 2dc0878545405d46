"""``sat_clap_text`` / ``sat_clap_audio`` conditioners: embeddings of a trained ``clap`` model (0.0.20).

Why: a diffusion model can be conditioned on the joint CLAP space (captions at training time, audio or captions
at generation time). The conditioner's ``config`` is the CLAP's own model config (``model``, ``sample_rate``) plus
``ckpt_path`` (an unwrapped CLAP checkpoint, loaded strictly), ``use_model_pretransform`` (give the CLAP the
diffusion model's pretransform instead of building its own; the checkpoint's ``pretransform.*`` keys are then not
used), ``project_out`` and, for text, ``use_text_features`` / ``feature_layer_ix``.

- ``sat_clap_text``: captions -> ``[B, 1, joint_embed_dim]`` (the normalised CLAP text embedding), or with
  ``use_text_features`` the RoBERTa hidden states of layer ``feature_layer_ix`` ``[B, L, width]`` with their mask;
- ``sat_clap_audio``: *latents* ``[C, T]`` per item (as 0.0.20: the pretransform is not run here) ->
  ``[B, 1, joint_embed_dim]``, the normalised CLAP audio embedding.

As upstream, the CLAP is a frozen submodule (``conditioner.conditioners.<id>.model.*`` keys in the diffusion
model's checkpoint: the text conditioner drops the audio branch and pretransform, the audio conditioner the text
branch), followed by ``proj_out`` (Identity when the widths already match and ``project_out`` is false).

Differences from 0.0.20:
- ``sat_clap_text`` sizes ``proj_out`` from the width it returns: ``joint_embed_dim`` for embeddings (0.0.20 uses
  the RoBERTa width there too, so ``proj_out`` fails or is skipped whenever the two differ) and the RoBERTa width
  for ``use_text_features``;
- the frozen CLAP stays in eval mode when the diffusion model is put in training mode (0.0.20 switches it to
  training mode with its parent, so RoBERTa's dropout changed the conditioning during training);
- ``ckpt_path`` loads strictly (0.0.20 copies whatever fits and silently keeps random weights for the rest);
- the attention mask of ``use_text_features`` is boolean, like the other text conditioners here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.clap import CLAP, build_clap
from stable_audio_ops.models.conditioner_base import Conditioner, _check_texts
from stable_audio_ops.models.meta_init import real_parameters

# keys of a whole clap model config that a copied-in config may carry; unused here (0.0.20 ignores them too)
_CLAP_CONFIG_EXTRAS = ("model_type", "sample_size", "audio_channels")
_COMMON_KEYS = ("output_dim", "model", "sample_rate", "ckpt_path", "use_model_pretransform", "project_out",
                *_CLAP_CONFIG_EXTRAS)


class _FrozenCLAP(Conditioner):
    """Holds a frozen CLAP that stays in eval mode whatever mode its parent is put in."""

    def __init__(self, clap: CLAP, dim: int, output_dim: int, project_out: bool):
        super().__init__(dim, output_dim, project_out=project_out)
        self.model = clap
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> _FrozenCLAP:
        super().train(mode)
        self.model.eval()
        return self

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.proj_out, nn.Identity):
            x = x.to(next(self.proj_out.parameters()).dtype)
        return self.proj_out(x)


class SATCLAPTextConditioner(_FrozenCLAP):
    """Captions -> CLAP text embeddings (or RoBERTa features); see the module docstring."""

    def __init__(self, clap: CLAP, output_dim: int, project_out: bool = False, use_text_features: bool = False,
                 feature_layer_ix: int = -2):
        dim = clap.text_branch.embed_dim if use_text_features else clap.joint_embed_dim
        super().__init__(clap, dim, output_dim, project_out)
        self.use_text_features = use_text_features
        self.feature_layer_ix = feature_layer_ix
        del self.model.pretransform
        del self.model.audio_branch

    def forward(self, values: Sequence[Any], device: torch.device | str = "cpu") -> list:
        texts = _check_texts(values, type(self).__name__)
        self.model.to(device)
        self.proj_out.to(device)
        with torch.no_grad():
            if self.use_text_features:
                features, mask = self.model.text_branch.get_text_features(texts, layer_ix=self.feature_layer_ix)
                return [self._project(features), mask.to(device).bool()]
            embedding = self.model.get_text_embedding(texts).unsqueeze(1)
        return [self._project(embedding), torch.ones(embedding.shape[0], 1, device=device)]


class SATCLAPAudioConditioner(_FrozenCLAP):
    """Latents -> CLAP audio embeddings; see the module docstring."""

    def __init__(self, clap: CLAP, output_dim: int, project_out: bool = False):
        super().__init__(clap, clap.joint_embed_dim, output_dim, project_out)
        del self.model.text_branch

    def forward(self, values: Sequence[Any] | torch.Tensor, device: torch.device | str = "cpu") -> list:
        latents = torch.stack([torch.as_tensor(v) for v in values]) if isinstance(values, (list, tuple)) else values
        self.model.to(device)
        self.proj_out.to(device)
        with torch.no_grad():
            embedding = self.model.get_audio_embedding(latents.to(device)).unsqueeze(1)
        return [self._project(embedding), torch.ones(embedding.shape[0], 1, device=device)]


def load_clap_for_conditioner(node: ConfigNode, pretransform: nn.Module | None = None) -> CLAP:
    """Build the conditioner's CLAP from its ``config`` and load ``ckpt_path`` strictly (when given).

    With ``use_model_pretransform`` the CLAP gets ``pretransform`` (the diffusion model's) and the checkpoint's
    own ``pretransform.*`` tensors are left out, as 0.0.20 puts the model's pretransform back after loading."""
    use_model_pretransform = node.get("use_model_pretransform", "a bool", False)
    shared = pretransform if use_model_pretransform else None
    if use_model_pretransform:
        # build without a pretransform of its own: the model's replaces it (and is not to be overwritten)
        data = {**node.data, "model": {k: v for k, v in node.get("model", "an object").items() if k != "pretransform"}}
        node = ConfigNode(data, node.source, node.path)
    clap = build_clap(node)
    ckpt_path = node.get("ckpt_path", "a string", None)
    if ckpt_path is not None:
        state = load_ckpt_state_dict(ckpt_path)
        if use_model_pretransform:
            state = {k: v for k, v in state.items() if not k.startswith("pretransform.")}
        # built inside parameters_on_meta (load_local_model): the file's tensors become the parameters, real ones
        on_meta = any(p.is_meta for p in clap.parameters())
        with real_parameters():
            load_state_dict_checked(clap, state, strict=True, what=f"{node.source}: {node._key_path('ckpt_path')} "
                                    f"({ckpt_path})", assign=on_meta)
    if shared is not None:
        clap.pretransform = shared
    return clap


def build_sat_clap_text(node: ConfigNode, output_dim: int, model_pretransform: nn.Module | None = None) -> Conditioner:
    check_known_keys(node, (*_COMMON_KEYS, "use_text_features", "feature_layer_ix"))
    use_text_features = node.get("use_text_features", "a bool", False)
    feature_layer_ix = node.get("feature_layer_ix", "an int", -2)
    clap = load_clap_for_conditioner(node, model_pretransform)
    return SATCLAPTextConditioner(clap, output_dim, project_out=node.get("project_out", "a bool", False),
                                  use_text_features=use_text_features, feature_layer_ix=feature_layer_ix)


def build_sat_clap_audio(node: ConfigNode, output_dim: int, model_pretransform: nn.Module | None = None) -> Conditioner:
    check_known_keys(node, _COMMON_KEYS)
    node.get("sample_rate", "a positive int")  # required by 0.0.20 for audio CLAP conditioners
    clap = load_clap_for_conditioner(node, model_pretransform)
    return SATCLAPAudioConditioner(clap, output_dim, project_out=node.get("project_out", "a bool", False))


# both get the diffusion model's pretransform (for ``use_model_pretransform``), as 0.0.20's factory passes it
build_sat_clap_text.takes_model_pretransform = True  # type: ignore[attr-defined]
build_sat_clap_audio.takes_model_pretransform = True  # type: ignore[attr-defined]


__all__ = ["SATCLAPAudioConditioner", "SATCLAPTextConditioner", "build_sat_clap_audio", "build_sat_clap_text",
           "load_clap_for_conditioner"]
