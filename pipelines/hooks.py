"""Kedro hooks of this project.

:class:`LineageTagsHook` puts the lineage tags (git commit, DVC data hash, DVC stage; see
``stable_audio_ops.tracking.lineage``) on the MLflow run kedro-mlflow opens for each ``kedro run``.
Tags are set when the first node starts (so a failed run still names its commit) and the data hash is
refreshed after the pipeline (the data_preparation run produces the data it hashes). The client API is
used with the remembered run id, so it does not matter whether kedro-mlflow has already ended the run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from stable_audio_ops.tracking.lineage import data_facts, lineage_tags

log = logging.getLogger(__name__)


class LineageTagsHook:
    def __init__(self) -> None:
        self.project_path = Path.cwd()
        self.run_id: str | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self.project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self) -> None:
        self.run_id = None

    @hook_impl
    def before_node_run(self) -> None:
        if self.run_id is not None:
            return
        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        self.run_id = run.info.run_id
        mlflow.set_tags(lineage_tags(self.project_path))

    @hook_impl
    def after_pipeline_run(self) -> None:
        if self.run_id is None:
            return
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        for key, value in data_facts(root=self.project_path).items():
            client.set_tag(self.run_id, key, value)
        log.info("lineage tags set on MLflow run %s", self.run_id)
