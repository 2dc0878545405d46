"""``clap_text`` / ``clap_audio`` conditioners: LAION-CLAP checkpoints (Stable Audio 1.0 / 2.0 configs).

They need the optional ``laion_clap`` package (``pip install laion-clap``, not a dependency of this project) and a
local LAION-CLAP checkpoint at ``clap_ckpt_path``; without the package, building one is a config error that says
so. Nothing is downloaded: laion_clap's RoBERTa tokenizer must already be in the local Hugging Face cache.

Semantics follow 0.0.20: ``clap_text`` gives one projected 512-d embedding per caption ``[B, 1, 512]``, or with
``use_text_features`` the RoBERTa hidden states of layer ``feature_layer_ix`` ``[B, L, 768]`` (padded positions
handled by ``padding_mode``); ``clap_audio`` gives the 512-d embedding of mono audio. The CLAP is frozen and kept
outside the module tree (no checkpoint keys) unless ``finetune`` is true.

Differences from 0.0.20:
- ``clap_audio`` works: 0.0.20 reads ``self.finetune`` before setting it (an AttributeError for every config) and
  has no ``finetune`` argument; here it accepts ``finetune`` (default false) like ``clap_text``;
- ``clap_audio`` stacks per-item ``[C, T]`` audio into a batch (0.0.20 concatenates them along the batch axis,
  which mixes items and channels);
- the checkpoint's ``module.`` prefix is stripped only where present (0.0.20 cuts 7 characters off every key).
Not exercised by this project's tests (laion_clap is not installed here); the missing-package error is.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.conditioner_base import PADDING_MODES, Conditioner, _check_texts

LAION_CLAP_PACKAGE = "laion_clap"


def require_laion_clap(node: ConfigNode, conditioner_type: str) -> Any:
    """Import laion_clap, or a config error naming the package and the conditioner's ``clap_ckpt_path``."""
    if importlib.util.find_spec(LAION_CLAP_PACKAGE) is None:
        raise ConfigError(node.source, node._key_path("clap_ckpt_path"),
                          f"the {conditioner_type!r} conditioner loads a LAION-CLAP checkpoint (clap_ckpt_path) "
                          f"with the {LAION_CLAP_PACKAGE!r} package, which is not installed: pip install "
                          "laion-clap==1.1.4 (or use a sat_clap_text / sat_clap_audio conditioner with a clap model "
                          "trained here)")
    import laion_clap

    return laion_clap


def _load_laion_state_dict(path: str, model: nn.Module) -> None:
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    state.pop("text_branch.embeddings.position_ids", None)  # a buffer newer transformers no longer store
    model.load_state_dict(state)


class _LaionCLAP(Conditioner):
    def __init__(self, laion_clap: Any, dim: int, output_dim: int, clap_ckpt_path: str, audio_model_type: str,
                 enable_fusion: bool, project_out: bool, finetune: bool, keep: str):
        super().__init__(dim, output_dim, project_out=project_out)
        self.finetune = finetune
        module = laion_clap.CLAP_Module(enable_fusion=enable_fusion, amodel=audio_model_type, device="cpu")
        if finetune:
            self.model = module
        else:
            self.__dict__["model"] = module
        _load_laion_state_dict(clap_ckpt_path, module.model)
        branch = getattr(module.model, keep)
        branch.requires_grad_(finetune)
        branch.train(finetune)
        delattr(module.model, "audio_branch" if keep == "text_branch" else "text_branch")

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.proj_out, nn.Identity):
            x = x.to(next(self.proj_out.parameters()).dtype)
        return self.proj_out(x)


class CLAPTextConditioner(_LaionCLAP):
    def __init__(self, laion_clap: Any, output_dim: int, clap_ckpt_path: str, use_text_features: bool = False,
                 feature_layer_ix: int = -1, audio_model_type: str = "HTSAT-base", enable_fusion: bool = True,
                 project_out: bool = False, finetune: bool = False, padding_mode: str = "none"):
        super().__init__(laion_clap, 768 if use_text_features else 512, output_dim, clap_ckpt_path, audio_model_type,
                         enable_fusion, project_out, finetune, keep="text_branch")
        self.use_text_features = use_text_features
        self.feature_layer_ix = feature_layer_ix
        self.padding_mode = padding_mode
        if padding_mode == "learned":
            self.padding_embedding = nn.Parameter(torch.randn(output_dim) * 0.02)

    def forward(self, values: Sequence[Any], device: torch.device | str = "cpu") -> list:
        texts = _check_texts(values, type(self).__name__)
        self.model.to(device)
        padded = texts + [""] if len(texts) == 1 else texts  # laion_clap squeezes a batch of one
        if self.use_text_features:
            tokens = self.model.tokenizer(padded)
            mask = tokens["attention_mask"].to(device)
            hidden = self.model.model.text_branch(input_ids=tokens["input_ids"].to(device), attention_mask=mask,
                                                  output_hidden_states=True)["hidden_states"][self.feature_layer_ix]
            hidden, mask = hidden[:len(texts)], mask[:len(texts)].bool()
            features = self._project(hidden)
            if self.padding_mode == "zero":
                features = features * mask.unsqueeze(-1).to(features.dtype)
            elif self.padding_mode == "learned":
                fill = self.padding_embedding.to(features.dtype).expand_as(features)
                features = torch.where(mask.unsqueeze(-1), features, fill)
            return [features, mask]
        embedding = self.model.get_text_embedding(padded, use_tensor=True)[:len(texts)].unsqueeze(1).to(device)
        return [self._project(embedding), torch.ones(embedding.shape[0], 1, device=device)]


class CLAPAudioConditioner(_LaionCLAP):
    def __init__(self, laion_clap: Any, output_dim: int, clap_ckpt_path: str, audio_model_type: str = "HTSAT-base",
                 enable_fusion: bool = True, project_out: bool = False, finetune: bool = False):
        super().__init__(laion_clap, 512, output_dim, clap_ckpt_path, audio_model_type, enable_fusion, project_out,
                         finetune, keep="audio_branch")

    def forward(self, values: Sequence[Any] | torch.Tensor, device: torch.device | str = "cpu") -> list:
        audios = torch.stack([torch.as_tensor(v) for v in values]) if isinstance(values, (list, tuple)) else values
        if audios.ndim == 4 and audios.shape[1] == 1:  # items given as [1, C, T]
            audios = audios[:, 0]
        self.model.to(device)
        mono = audios.to(device).float().mean(dim=1)
        embedding = self.model.get_audio_embedding_from_data(mono, use_tensor=True).unsqueeze(1).to(device)
        return [self._project(embedding), torch.ones(embedding.shape[0], 1, device=device)]


_COMMON = ("output_dim", "clap_ckpt_path", "audio_model_type", "enable_fusion", "project_out", "finetune")


def _common_kwargs(node: ConfigNode) -> dict[str, Any]:
    return {"clap_ckpt_path": node.get("clap_ckpt_path", "a string"),
            "audio_model_type": node.get("audio_model_type", "a string", "HTSAT-base"),
            "enable_fusion": node.get("enable_fusion", "a bool", True),
            "project_out": node.get("project_out", "a bool", False),
            "finetune": node.get("finetune", "a bool", False)}


def build_clap_text(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, (*_COMMON, "use_text_features", "feature_layer_ix", "padding_mode"))
    laion_clap = require_laion_clap(node, "clap_text")
    return CLAPTextConditioner(laion_clap, output_dim, use_text_features=node.get("use_text_features", "a bool", False),
                               feature_layer_ix=node.get("feature_layer_ix", "an int", -1),
                               padding_mode=node.choice("padding_mode", PADDING_MODES, "none"), **_common_kwargs(node))


def build_clap_audio(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, _COMMON)
    laion_clap = require_laion_clap(node, "clap_audio")
    return CLAPAudioConditioner(laion_clap, output_dim, **_common_kwargs(node))


__all__ = ["CLAPAudioConditioner", "CLAPTextConditioner", "LAION_CLAP_PACKAGE", "build_clap_audio",
           "build_clap_text", "require_laion_clap"]
