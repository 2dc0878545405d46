"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # every parameters_<pipeline>.yml is a parameters file; mlflow.yml is read by kedro-mlflow
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
    # conf/local overrides only the keys it names (Kedro's default, "destructive", would replace a whole
    # top-level section: `data_preparation: {raw_dirs: [...]}` in conf/local would drop split, demo, ...).
    "merge_strategy": {"parameters": "soft"},
}

from pipelines.hooks import LineageTagsHook  # noqa: E402

# git commit + DVC data hash as tags on every kedro-mlflow run
HOOKS = (LineageTagsHook(),)
