"""lm: prepared dataset + discrete autoencoder config -> train/unwrap the tokenizer -> tokens -> train/unwrap the LM
-> held-out perplexity, generated clips, report -> registry.

The tokenizer trains with the autoencoder pipeline's nodes, the tokens and the LM with the latent_diffusion
pipeline's (``pre_encode_latents`` with ``is_discrete``, ``train_latent_diffusion`` for any model over pre-encoded
data and its autoencoder), each reading the ``lm`` parameters."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.autoencoder.nodes import train_autoencoder, unwrap_autoencoder
from pipelines.latent_diffusion.nodes import latent_dataset_config, pre_encode_latents, train_latent_diffusion
from pipelines.lm.nodes import build_lm_config, evaluate_lm, register_lm, unwrap_lm


def _with(func: Callable, **settings) -> Callable:
    """``func`` with ``settings`` bound, keeping its name (Kedro's logs name the node's function)."""
    return update_wrapper(partial(func, **settings), func)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(_with(train_autoencoder, section="lm.autoencoder"),
                 inputs=["lm_autoencoder_model_config", "prepared_dataset_config", "params:lm.autoencoder"],
                 outputs="lm_autoencoder_training_result", name="train_lm_autoencoder"),
            node(unwrap_autoencoder, inputs=["lm_autoencoder_training_result", "lm_autoencoder_model_config"],
                 outputs=["lm_autoencoder_model", "lm_autoencoder_metrics"], name="unwrap_lm_autoencoder"),
            node(_with(pre_encode_latents, section="lm", is_discrete=True),
                 inputs=["lm_autoencoder_model", "prepared_dataset_config", "params:lm"],
                 outputs="lm_tokens", name="pre_encode_lm_tokens"),
            node(latent_dataset_config, inputs=["lm_tokens", "prepared_dataset_config"],
                 outputs="lm_token_dataset_config", name="lm_token_dataset_config"),
            node(build_lm_config, inputs=["lm_base_model_config", "lm_autoencoder_model", "params:lm"],
                 outputs="lm_model_config", name="build_lm_config"),
            node(_with(train_latent_diffusion, section="lm"),
                 inputs=["lm_model_config", "lm_token_dataset_config", "lm_autoencoder_model", "params:lm"],
                 outputs="lm_training_result", name="train_lm"),
            node(unwrap_lm, inputs=["lm_training_result", "lm_model_config"], outputs=["lm_model", "lm_metrics"],
                 name="unwrap_lm"),
            node(evaluate_lm, inputs=["lm_model", "test_dataset_config", "params:lm"],
                 outputs=["lm_evaluation", "lm_evaluation_metrics", "lm_report", "lm_generated"], name="evaluate_lm"),
            node(register_lm, inputs=["lm_autoencoder_model", "lm_model", "lm_evaluation", "params:lm"],
                 outputs="lm_registration", name="register_lm"),
        ]
    )
