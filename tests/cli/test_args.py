"""Flags generated from defaults.ini (upstream's prefigure contract, with real booleans)."""

from __future__ import annotations

import configparser

import pytest

from stable_audio_ops.cli.args import packaged_ini, parse_args_from_ini, parse_bool, parse_ini_value

UPSTREAM_KEYS = {
    "name", "project", "batch_size", "recover", "save_top_k", "num_nodes", "strategy", "precision",
    "num_workers", "seed", "accum_batches", "checkpoint_every", "val_every", "ckpt_path",
    "pretrained_ckpt_path", "pretransform_ckpt_path", "model_config", "dataset_config", "val_dataset_config",
    "save_dir", "gradient_clip_val", "remove_pretransform_weight_norm", "logger",
}
OUR_KEYS = {"max_steps", "mlflow_tracking_uri", "mlflow_experiment", "mlflow_run_id", "accelerator", "num_gpus"}


@pytest.fixture(autouse=True)
def _no_local_ini(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so ./defaults.ini of the repo does not shadow the packaged one


def test_packaged_ini_has_upstream_and_our_keys():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(packaged_ini())
    assert UPSTREAM_KEYS | OUR_KEYS <= set(parser["DEFAULTS"])


def test_defaults_and_types():
    args = parse_args_from_ini([])
    assert args.batch_size == 4 and args.seed == 42 and args.gradient_clip_val == 0.0
    assert args.recover is False  # prefigure would give the truthy string "false"
    assert args.project is None and args.ckpt_path == "" and args.logger == "mlflow" and args.max_steps == -1
    args = parse_args_from_ini(["--batch-size", "8", "--gradient-clip-val", "1", "--recover", "True",
                                "--max-steps", "-1", "--precision", "bf16-mixed"])
    assert args.batch_size == 8 and args.gradient_clip_val == 1.0 and args.recover is True
    assert args.precision == "bf16-mixed"


def test_unknown_and_badly_typed_flags_are_errors_naming_them(capsys):
    with pytest.raises(SystemExit):
        parse_args_from_ini(["--num-epochs", "3"])
    assert "--num-epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args_from_ini(["--batch", "3"])  # no abbreviations
    assert "--batch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args_from_ini(["--seed", "abc"])
    assert "--seed" in capsys.readouterr().err


def test_config_file_and_local_defaults(tmp_path, capsys):
    custom = tmp_path / "custom.ini"
    custom.write_text("[DEFAULTS]\nbatch_size = 16\nuse_cache = true\nrate = 0.5\nlabels = [1, 2]\n")
    args = parse_args_from_ini(["--config-file", str(custom), "--use-cache", "no", "--labels", "[3]"])
    assert args.batch_size == 16 and args.use_cache is False and args.rate == 0.5 and args.labels == [3]
    with pytest.raises(SystemExit):
        parse_args_from_ini(["--config-file", str(custom), "--seed", "1"])  # not a key of that ini
    assert "--seed" in capsys.readouterr().err

    (tmp_path / "defaults.ini").write_text("[DEFAULTS]\nbatch_size = 2\n")  # ./defaults.ini wins
    assert parse_args_from_ini([]).batch_size == 2
    with pytest.raises(SystemExit):
        parse_args_from_ini(["--config-file", str(tmp_path / "missing.ini")])
    assert "missing.ini" in capsys.readouterr().err


def test_value_parsing_rules():
    assert parse_ini_value("'auto'") == "auto" and parse_ini_value("auto") == "auto"
    assert parse_ini_value("None") is None and parse_ini_value("FALSE") is False
    assert parse_ini_value("1e-3") == 1e-3 and parse_ini_value("sqlite:///x.db") == "sqlite:///x.db"
    assert parse_bool("Yes") is True and parse_bool("0") is False
