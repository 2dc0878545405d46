"""Project commands for ``kedro``: Kedro's own ``pipeline create`` / ``pipeline delete``, aimed at this layout.

Why: Kedro writes a new pipeline to ``<source_dir>/<package>/pipelines/<name>``. This project's Kedro package
*is* the top-level ``pipelines/`` folder and its pipelines sit directly in it (``pipelines/<name>``), so the
stock command wrote ``pipelines/pipelines/<name>``, which the registry (``pipeline_registry.py``, one level
deep) never found. Kedro lets a project's ``cli.py`` override its commands; the two below run Kedro's own
implementation (same options, templates, tests and config files) with the package folder taken as the place
that holds pipelines: ``kedro pipeline create NAME`` writes ``pipelines/NAME`` (registered at once, as
``NAME``), ``tests/pipelines/NAME`` and ``conf/base/parameters_NAME.yml``; ``kedro pipeline delete NAME``
removes them again. Every other ``kedro`` command is Kedro's, unchanged.
"""

from __future__ import annotations

from typing import Any

import click
from kedro.framework.cli.pipeline import create_pipeline, delete_pipeline
from kedro.framework.cli.project import run  # noqa: F401  (``python -m pipelines`` looks for ``cli.run``)


def _with_pipelines_in_package(command: click.Command) -> click.Command:
    """``command`` with the project metadata's ``<source_dir>/<package>`` pointing at the project root, so
    Kedro's ``<source_dir>/<package>/pipelines`` is this project's ``pipelines/``."""

    @click.pass_context
    def callback(ctx: click.Context, **kwargs: Any) -> Any:
        ctx.obj = ctx.obj._replace(source_dir=ctx.obj.project_path, package_name=".")
        return ctx.invoke(command, **kwargs)

    return click.Command(command.name, params=command.params, callback=callback, help=command.help)


@click.group(name="kedro")
def cli() -> None:
    """stable-audio-ops project commands."""


@cli.group()
def pipeline() -> None:
    """Commands for working with pipelines (in pipelines/<name>, beside the project's own)."""


pipeline.add_command(_with_pipelines_in_package(create_pipeline))
pipeline.add_command(_with_pipelines_in_package(delete_pipeline))
