"""The serve command: which MLflow store it reads, and that a model it cannot load ends the process."""

from __future__ import annotations

from stable_audio_ops.cli.serve import build_parser, main

from ..serving.conftest import free_port


def test_server_that_cannot_load_its_model_exits_non_zero_with_the_reason(tmp_path, monkeypatch, capsys):
    """Default store = the project's mlflow/mlflow.db (absent in this folder): the server stops, exit 1,
    and no empty ./mlflow.db is left behind."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "SAO_MLFLOW_TRACKING_URI", "SAO_MODEL"):
        monkeypatch.delenv(name, raising=False)
    code = main(["--model", "models:/stable-audio-ops-latent-diffusion@champion", "--host", "127.0.0.1",
                 "--port", str(free_port()), "--log-level", "warning"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot serve models:/stable-audio-ops-latent-diffusion@champion" in err
    assert "no MLflow store at mlflow/mlflow.db" in err
    assert not list(tmp_path.rglob("*.db"))


def test_tracking_uri_flag_has_the_generate_spelling_too():
    args = build_parser().parse_args(["--model", "m", "--tracking-uri", "sqlite:///x.db"])
    assert args.mlflow_tracking_uri == "sqlite:///x.db"
