"""``run_training``: what ``python train.py`` does, as a function (the CLI and orchestrators call it).

Order of operations follows upstream's ``train.py`` (seed, configs, dataloaders, model, pretrained /
pretransform weights, training module, logger, checkpointing, demos, Trainer, fit), with these
deliberate differences:
- it runs on CPU (``accelerator="auto"`` picks a GPU only when one exists; ``16-mixed`` becomes
  ``32`` on CPU, with a logged warning);
- ``--pretrained-ckpt-path`` loads STRICTLY and reports missing/unexpected/mismatched keys
  (upstream silently skips what does not fit); ``--pretrained-ckpt-strict false`` restores the
  partial copy, still logging the report;
- MLflow (a local sqlite store) replaces W&B; checkpoints go to ``save_dir`` (default
  ``checkpoints/<name>``), every ``checkpoint_every`` steps (``last.ckpt`` refreshed each time and
  when training stops), written atomically; ``save_top_k`` is honoured (upstream ignores it);
- ``--ckpt-path`` is checked to be a training checkpoint (a model file gets a pointer to
  ``--pretrained-ckpt-path``); ``--ckpt-path last`` resumes from the newest one in ``save_dir``;
- ``--num-gpus``/``--num-nodes``/``--strategy`` work on CPU too (several processes, gloo); only
  rank 0 logs to MLflow; each rank writes ``save_dir/ranks/rank-<r>.json`` (see training.distributed);
- ``max_steps`` bounds a run (upstream trains until killed; -1 keeps that).
- SIGTERM / Ctrl-C save ``last.ckpt`` at the current step and end with
  :class:`~stable_audio_ops.training.stopping.TrainingStoppedEarly` (exit 143 / 130); so does a run that
  ends before ``max_steps`` for any other reason (exit 3), so an orchestrator never takes it for success.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.config.model_config import load_model_config, read_json_file
from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.data.dataloader import create_dataloader_from_config
from stable_audio_ops.errors import ConfigError, DatasetError
from stable_audio_ops.models.checkpoints import copy_state_dict, load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.checkpointing import (
    AtomicCheckpointIO,
    SaveOnStop,
    check_resume_checkpoint,
    resolve_resume_path,
)
from stable_audio_ops.training.demos import AutoencoderDemoCallback
from stable_audio_ops.training.diffusion_demos import build_diffusion_cond_demo_callback
from stable_audio_ops.training.distributed import RankReport, plan_distribution, rank_seed
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.stopping import stopped_early
from stable_audio_ops.utils.ranks import process_rank

log = logging.getLogger(__name__)

HALF_PRECISIONS = ("16", "16-mixed", "16-true", "bf16", "bf16-mixed", "bf16-true", "transformer-engine")


@dataclass
class TrainOptions:
    """Every ``train.py`` flag (ini key) with its packaged default (see cli/defaults.ini)."""

    model_config: str = ""
    dataset_config: str = ""
    val_dataset_config: str = ""
    name: str = "stable_audio_ops"
    project: str | None = None  # accepted for upstream compatibility; unused
    batch_size: int = 4
    recover: bool = False  # accepted for upstream compatibility; unused (resume with ckpt_path)
    save_top_k: int = -1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "16-mixed"
    num_workers: int = 6
    seed: int = 42
    accum_batches: int = 1
    checkpoint_every: int = 10000
    val_every: int = -1
    ckpt_path: str = ""
    pretrained_ckpt_path: str = ""
    pretrained_ckpt_strict: bool = True
    pretransform_ckpt_path: str = ""
    save_dir: str = ""
    gradient_clip_val: float = 0.0
    remove_pretransform_weight_norm: str = ""
    logger: str = "mlflow"
    max_steps: int = -1
    mlflow_tracking_uri: str = "sqlite:///mlflow/mlflow.db"
    mlflow_experiment: str = "stable-audio-ops"
    mlflow_run_id: str = ""
    accelerator: str = "auto"
    num_gpus: int = 1
    num_threads: int = 0
    config_file: str = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> tuple[TrainOptions, list[str]]:
        """Options from parsed flags; returns the keys that are not options (ignored, like upstream)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        return cls(**known), sorted(k for k in values if k not in names)

    def resolved_save_dir(self) -> Path:
        return Path(self.save_dir) if self.save_dir else Path("checkpoints") / self.name


@dataclass
class TrainResult:
    checkpoint_path: Path
    last_step: int
    mlflow_run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    save_dir: Path | None = None
    global_rank: int = 0  # under DDP every process returns a result; rank 0's is the one to report


# --- small pieces (each testable on its own) -------------------------------------------------------
def resolve_accelerator(accelerator: str) -> str:
    """``auto`` -> ``gpu`` when CUDA is available, else ``cpu`` (MPS only when asked for by name)."""
    name = (accelerator or "auto").lower()
    if name == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return "gpu"
    if name in ("gpu",) and not torch.cuda.is_available():
        raise ConfigError("", "accelerator", "accelerator 'gpu' requested but CUDA is not available")
    return name


def resolve_precision(precision: str, accelerator: str) -> tuple[str, str | None]:
    """Precision Lightning should use, plus a note when it had to change (fp16 has no CPU path)."""
    precision = str(precision)
    if accelerator == "cpu" and precision in ("16", "16-mixed", "16-true"):
        return "32", f"precision {precision} is not available on CPU; training in 32-bit float instead"
    return precision, None


def apply_thread_setting(num_threads: int) -> int | None:
    """``num_threads`` > 0, else ``SAO_TORCH_THREADS`` (set by the launcher), else leave torch's default."""
    threads = num_threads if num_threads and num_threads > 0 else int(os.environ.get("SAO_TORCH_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
        return threads
    return None


def _read_json(path: str, what: str) -> dict:
    return read_json_file(path, what)


def load_configs(options: TrainOptions) -> tuple[dict, dict, dict | None]:
    """Model, dataset and optional validation dataset configs, validated (errors name the file)."""
    if not options.model_config:
        raise ConfigError("", "model_config", "no model config given (--model-config)")
    if not options.dataset_config:
        raise ConfigError("", "dataset_config", "no dataset config given (--dataset-config)")
    model_config = load_model_config(options.model_config)
    if "training" not in model_config:
        raise ConfigError(options.model_config, "training", "missing required key (train.py needs a training section)")
    if "sample_size" not in model_config:
        raise ConfigError(options.model_config, "sample_size", "missing required key (the training crop length)")
    dataset_config = validate_dataset_config(_read_json(options.dataset_config, "dataset config"), options.dataset_config)
    val_config = None
    if options.val_dataset_config:
        val_config = validate_dataset_config(
            _read_json(options.val_dataset_config, "dataset config"), options.val_dataset_config
        )
    apply_pre_encoded_dataset(model_config, dataset_config, options.model_config, options.dataset_config)
    return model_config, dataset_config, val_config


def apply_pre_encoded_dataset(model_config: dict, dataset_config: dict, model_source: str = "",
                              dataset_source: str = "") -> None:
    """A ``pre_encoded`` dataset needs ``training.pre_encoded`` (latents must not be encoded again):
    switched on when the model config leaves it out, an error when it says false."""
    if dataset_config.get("dataset_type") != "pre_encoded":
        return
    training = model_config.setdefault("training", {})
    if training.get("pre_encoded") is False:
        raise ConfigError(model_source, "training.pre_encoded", f"is false but {dataset_source or 'the dataset'} "
                          "is a pre_encoded dataset (latents); set it to true")
    if "pre_encoded" not in training:
        log.info("pre_encoded dataset: training.pre_encoded set to true")
        training["pre_encoded"] = True


def remove_weight_norm_everywhere(module: torch.nn.Module) -> int:
    """Strip legacy weight norm from every submodule that has it; returns how many were stripped."""
    from torch.nn.utils import remove_weight_norm

    count = 0
    for sub in module.modules():
        if hasattr(sub, "weight_g") and hasattr(sub, "weight_v"):
            remove_weight_norm(sub)
            count += 1
    return count


def load_initial_weights(model: torch.nn.Module, options: TrainOptions) -> None:
    """``--pretrained-ckpt-path`` and ``--pretransform-ckpt-path`` (+ weight-norm removal) as upstream orders them."""
    if options.pretrained_ckpt_path:
        state = load_ckpt_state_dict(options.pretrained_ckpt_path)
        what = f"--pretrained-ckpt-path {options.pretrained_ckpt_path}"
        if options.pretrained_ckpt_strict:
            report = load_state_dict_checked(model, state, strict=True, what=what)
        else:
            report = copy_state_dict(model, state)
        log.info("%s: %s", what, report.format())

    mode = options.remove_pretransform_weight_norm
    pretransform = getattr(model, "pretransform", None)
    if (options.pretransform_ckpt_path or mode in ("pre_load", "post_load")) and pretransform is None:
        raise ConfigError(options.model_config, "model.pretransform",
                          "--pretransform-ckpt-path / --remove-pretransform-weight-norm need a model with a pretransform")
    if mode == "pre_load":
        log.info("removed weight norm from %d pretransform modules", remove_weight_norm_everywhere(pretransform))
    if options.pretransform_ckpt_path:
        state = load_ckpt_state_dict(options.pretransform_ckpt_path)
        load_state_dict_checked(pretransform, state, strict=True,
                                what=f"--pretransform-ckpt-path {options.pretransform_ckpt_path}")
    if mode == "post_load":
        log.info("removed weight norm from %d pretransform modules", remove_weight_norm_everywhere(pretransform))


def _sqlite_parent(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        return path.parent
    return None


def make_logger(options: TrainOptions):
    """MLFlowLogger for ``logger=mlflow``; None for ``none``. Logging into an existing run leaves it open."""
    kind = (options.logger or "none").lower()
    if kind in ("none", "", "false"):
        return None
    if kind != "mlflow":
        raise ConfigError("", "logger", f"unknown logger {options.logger!r}; known: mlflow, none")
    from lightning.pytorch.loggers import MLFlowLogger

    class _RunKeepingMLFlowLogger(MLFlowLogger):
        """Does not mark a run it did not open as finished (the pipeline that opened it ends it)."""

        def finalize(self, status: str = "success") -> None:
            if status == "success" and options.mlflow_run_id:
                return
            super().finalize(status)

    uri = options.mlflow_tracking_uri
    parent = _sqlite_parent(uri)
    artifact_location = None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (parent / "artifacts").resolve().as_uri()
    return _RunKeepingMLFlowLogger(
        experiment_name=options.mlflow_experiment,
        run_name=options.name,
        tracking_uri=uri,
        run_id=options.mlflow_run_id or None,
        artifact_location=artifact_location,
        log_model=False,
    )


def flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    """Nested config -> ``{"prefix.a.b": "value"}`` (lists kept whole, as JSON)."""
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value if isinstance(value, str) else json.dumps(value)
    return out


def log_run_inputs(logger, options: TrainOptions, model_config: dict, dataset_config: dict) -> None:
    """Params (CLI options, flattened configs) and the two config files as artifacts of the run."""
    import tempfile

    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    client, run_id = logger.experiment, logger.run_id
    params = flatten("train", {k: v for k, v in vars(options).items() if v not in ("", None)}, {})
    flatten("model_config", model_config, params)
    flatten("dataset_config", dataset_config, params)
    items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
    try:
        for start in range(0, len(items), 100):
            client.log_batch(run_id, params=items[start:start + 100])
    except MlflowException as exc:  # e.g. logging into a run that already has other values for these keys
        log.warning("some training params were not logged to MLflow: %s", exc)
    with tempfile.TemporaryDirectory(prefix="sao-configs-") as tmp:
        for filename, cfg in (("model_config.json", model_config), ("dataset_config.json", dataset_config)):
            path = Path(tmp) / filename
            path.write_text(json.dumps(cfg, indent=2))
            client.log_artifact(run_id, str(path), "configs")


def make_checkpoint_callback(options: TrainOptions, save_dir: Path):
    """Every ``checkpoint_every`` steps; keeps ``save_top_k`` newest (-1 all); refreshes ``last.ckpt`` each time.

    ``last.ckpt`` always holds the newest state, so a run killed between checkpoints resumes with
    ``--ckpt-path <save_dir>/last.ckpt`` (or ``--ckpt-path last``) and the same command line.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    keep = options.save_top_k
    return ModelCheckpoint(
        dirpath=save_dir,
        filename="{epoch}-{step}",
        every_n_train_steps=max(1, options.checkpoint_every),
        save_top_k=keep,
        monitor="step" if keep > 0 else None,
        mode="max",
        save_last=True,
    )


def build_trainer(options: TrainOptions, plan, precision: str, manual: bool, callbacks: list, logger,
                  save_dir: Path, has_val: bool):
    """The Lightning Trainer for ``options`` (split out so tests can check every flag reaches it)."""
    import lightning.pytorch as pl

    trainer_kwargs: dict[str, Any] = {}
    if has_val and options.val_every > 0:
        trainer_kwargs.update(val_check_interval=options.val_every, check_val_every_n_epoch=None)
    if not manual:
        trainer_kwargs.update(accumulate_grad_batches=options.accum_batches,
                              gradient_clip_val=options.gradient_clip_val or None)
    if plan.strategy_name != "deepspeed":  # DeepSpeed writes its own sharded checkpoint folders
        trainer_kwargs["plugins"] = [AtomicCheckpointIO()]
    # TQDM, not Rich: Rich draws nothing until the end when stdout is a pipe (Kedro's launcher), while tqdm's
    # carriage-return updates stream through it and show live progress.
    from lightning.pytorch.callbacks import TQDMProgressBar

    callbacks = [*callbacks, TQDMProgressBar(refresh_rate=1 if sys.stdout.isatty() else 10)]
    return pl.Trainer(
        **plan.trainer_kwargs(),
        precision=precision,
        max_steps=options.max_steps,
        max_epochs=-1,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        reload_dataloaders_every_n_epochs=0,
        default_root_dir=str(save_dir),
        enable_progress_bar=True,
        **trainer_kwargs,
    )


def build_demo_callback(model_config: dict, options: TrainOptions, demo_loader_factory):
    """The demo callback of the model type (:data:`DEMO_CALLBACKS`), or None when it has none."""
    builder = DEMO_CALLBACKS.get(str(model_config.get("model_type")))
    return builder(model_config, options, demo_loader_factory) if builder is not None else None


def _diffusion_cond_demo_callback(model_config: dict, options: TrainOptions, demo_loader_factory):
    return build_diffusion_cond_demo_callback(model_config, options.model_config)


def _autoencoder_demo_callback(model_config: dict, options: TrainOptions, demo_loader_factory):
    demo = ConfigNode(model_config, options.model_config).child("training").child("demo", {})
    demo_every = demo.get("demo_every", "a positive int", 2000)
    max_demos = demo.get("max_demos", "a positive int", 8)
    loader = demo_loader_factory(min(options.batch_size, max_demos))
    try:
        batch = next(iter(loader))
    except StopIteration:
        log.warning("the demo dataset yields no complete batch; no demos will be logged")
        return None
    return AutoencoderDemoCallback(batch[0], demo_every=demo_every, sample_rate=model_config["sample_rate"],
                                   max_demos=max_demos, demo_metadata=list(batch[1]) if len(batch) > 1 else None)


# model_type -> builder(model_config, options, demo_loader_factory) -> Callback | None
DEMO_CALLBACKS = {
    "autoencoder": _autoencoder_demo_callback,
    "diffusion_cond": _diffusion_cond_demo_callback,
    "diffusion_cond_inpaint": _diffusion_cond_demo_callback,
}


# --- the run ------------------------------------------------------------------------------------------
def run_training(options: TrainOptions) -> TrainResult:
    """Train as ``options`` say; returns the final checkpoint, last step, MLflow run id and last metrics."""
    import lightning.pytorch as pl

    apply_thread_setting(options.num_threads)
    rank = process_rank(options.num_gpus)
    seed = rank_seed(options.seed, options.num_gpus)
    pl.seed_everything(seed, workers=True)

    model_config, dataset_config, val_config = load_configs(options)
    ckpt_path = resolve_resume_path(options.ckpt_path, options.resolved_save_dir())
    check_resume_checkpoint(ckpt_path)
    sample_rate = int(model_config["sample_rate"])
    sample_size = int(model_config["sample_size"])
    channels = int(model_config.get("audio_channels", 2))

    def loader(cfg: dict, source: str, batch_size: int, shuffle: bool, workers: int):
        return create_dataloader_from_config(cfg, batch_size=batch_size, sample_size=sample_size,
                                             sample_rate=sample_rate, audio_channels=channels,
                                             num_workers=workers, shuffle=shuffle, source=source)

    train_dl = loader(dataset_config, options.dataset_config, options.batch_size, True, options.num_workers)
    if len(train_dl) == 0:
        raise DatasetError(
            f"{options.dataset_config}: no complete batch of {options.batch_size} "
            f"({len(train_dl.dataset)} files, drop_last); lower --batch-size or add audio"
        )
    val_dl = None
    if val_config is not None:
        val_dl = loader(val_config, options.val_dataset_config, options.batch_size, False, options.num_workers)

    model = create_model_from_config(model_config, source=options.model_config)
    load_initial_weights(model, options)
    module = create_training_module_from_config(model_config, model, source=options.model_config)

    accelerator = resolve_accelerator(options.accelerator)
    precision, note = resolve_precision(options.precision, accelerator)
    if note:
        log.warning("%s", note)
    manual = not module.automatic_optimization
    if manual and options.accum_batches != 1:
        raise ConfigError(options.model_config, "model_type",
                          f"--accum-batches {options.accum_batches}: gradient accumulation is not available for "
                          f"{model_config['model_type']} training (manual optimization); use a larger --batch-size")
    if manual and options.gradient_clip_val:
        log.warning("--gradient-clip-val is ignored for this model type; set training.clip_grad_norm instead")
    plan = plan_distribution(options.strategy, options.num_gpus, options.num_nodes, accelerator,
                             find_unused_parameters=bool(getattr(module, "ddp_find_unused_parameters", False)),
                             single_optimizer=not getattr(module, "use_disc", False))
    if rank == 0:
        for line in plan.notes:
            log.warning("%s", line)

    # Only rank 0 talks to MLflow (the other ranks would open runs of their own or race on sqlite).
    logger = make_logger(options) if rank == 0 else None
    save_dir = options.resolved_save_dir()
    save_dir.mkdir(parents=True, exist_ok=True)

    last = save_dir / "last.ckpt"

    class EmbedModelConfig(pl.Callback):
        """Model config in every checkpoint (upstream's ModelConfigEmbedderCallback)."""

        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            checkpoint["model_config"] = model_config

    stop = SaveOnStop(last)  # last.ckpt at the current step on SIGTERM / Ctrl-C
    callbacks: list[pl.Callback] = [make_checkpoint_callback(options, save_dir), EmbedModelConfig(), stop,
                                    RankReport(save_dir / "ranks", seed=seed, batch_size=options.batch_size)]
    demo_source = val_config if val_config is not None else dataset_config
    demo_name = options.val_dataset_config or options.dataset_config
    if logger is not None and rank == 0:
        demo = build_demo_callback(model_config, options,
                                   lambda bs: loader(demo_source, demo_name, bs, False, 0))
        if demo is not None:
            callbacks.append(demo)

    trainer = build_trainer(options, plan, precision, manual, callbacks, logger, save_dir, has_val=val_dl is not None)
    if logger is not None and trainer.is_global_zero:
        log_run_inputs(logger, options, model_config, dataset_config)

    try:
        with warnings.catch_warnings():
            # Lightning warns that manual-optimization checkpoints hold post-step weights: that is what we want.
            warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
            trainer.fit(module, train_dataloaders=train_dl, val_dataloaders=val_dl, ckpt_path=ckpt_path)
    except SystemExit:
        # Lightning ends fit with SystemExit on SIGTERM (no exit code: it would read as success) and after
        # Ctrl-C (code 1); SaveOnStop has saved last.ckpt. Raise what says so, with the documented exit code.
        if stop.signum is None:
            raise
        raise stopped_early(int(trainer.global_step), options.max_steps, last, stop.signum,
                            stop.saved_step) from None

    trainer.save_checkpoint(last, weights_only=False)
    early = stopped_early(int(trainer.global_step), options.max_steps, last)
    if early is not None:  # fit returned before max_steps (a callback stopped it, the data ran out, ...)
        raise early
    metrics = {}
    for key, value in trainer.callback_metrics.items():
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError):
            continue
    run_id = logger.run_id if logger is not None and trainer.is_global_zero else None
    return TrainResult(checkpoint_path=last, last_step=int(trainer.global_step), mlflow_run_id=run_id,
                       metrics=metrics, save_dir=save_dir, global_rank=int(trainer.global_rank))
