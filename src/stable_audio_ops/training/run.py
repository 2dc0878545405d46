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

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from stable_audio_ops.config.dataset_config import DatasetConfig
from stable_audio_ops.data.dataloader import create_dataloader_from_config
from stable_audio_ops.errors import ConfigError, DatasetError
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.checkpointing import SaveOnStop, check_resume_checkpoint, resolve_resume_path
from stable_audio_ops.training.demo_callbacks import build_demo_callback
from stable_audio_ops.training.distributed import DistributedPlan, RankReport, plan_distribution, rank_seed
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.initial_weights import load_initial_weights
from stable_audio_ops.training.mlflow_logger import log_run_inputs, make_logger
from stable_audio_ops.training.options import TrainOptions, TrainResult
from stable_audio_ops.training.run_configs import load_configs
from stable_audio_ops.training.stopping import stopped_early
from stable_audio_ops.training.trainer import (
    EmbedModelConfig,
    apply_thread_setting,
    build_trainer,
    make_checkpoint_callback,
    resolve_accelerator,
    resolve_precision,
)
from stable_audio_ops.utils.ranks import process_rank

log = logging.getLogger(__name__)

# (validated dataset config, batch size, shuffle, workers) -> a DataLoader of training crops
LoaderFactory = Callable[[DatasetConfig, int, bool, int], DataLoader]


def loader_factory(model_config: dict) -> LoaderFactory:
    """DataLoaders of the model's crop length, sample rate and channels, for any of the run's datasets."""
    sample_rate = int(model_config["sample_rate"])
    sample_size = int(model_config["sample_size"])
    channels = int(model_config.get("audio_channels", 2))

    def loader(cfg: DatasetConfig, batch_size: int, shuffle: bool, workers: int) -> DataLoader:
        return create_dataloader_from_config(cfg, batch_size=batch_size, sample_size=sample_size,
                                             sample_rate=sample_rate, audio_channels=channels,
                                             num_workers=workers, shuffle=shuffle)

    return loader


def training_loaders(options: TrainOptions, loader: LoaderFactory, dataset_config: DatasetConfig,
                     val_config: DatasetConfig | None) -> tuple[DataLoader, DataLoader | None]:
    """The training loader (an error when it yields no complete batch) and the validation loader, if any."""
    train_dl = loader(dataset_config, options.batch_size, True, options.num_workers)
    if len(train_dl) == 0:
        raise DatasetError(
            f"{options.dataset_config}: no complete batch of {options.batch_size} "
            f"({len(train_dl.dataset)} files, drop_last); lower --batch-size or add audio"
        )
    val_dl = None
    if val_config is not None:
        val_dl = loader(val_config, options.batch_size, False, options.num_workers)
    return train_dl, val_dl


def check_optimization_flags(options: TrainOptions, model_config: dict, module: pl.LightningModule) -> bool:
    """Whether the module optimizes manually; flags it cannot honour are an error (accumulation) or a warning."""
    manual = not module.automatic_optimization
    if manual and options.accum_batches != 1:
        raise ConfigError(options.model_config, "model_type",
                          f"--accum-batches {options.accum_batches}: gradient accumulation is not available for "
                          f"{model_config['model_type']} training (manual optimization); use a larger --batch-size")
    if manual and options.gradient_clip_val:
        log.warning("--gradient-clip-val is ignored for this model type; set training.clip_grad_norm instead")
    return manual


def distribution(options: TrainOptions, module: pl.LightningModule, accelerator: str, rank: int) -> DistributedPlan:
    """How the run spreads over devices and nodes (rank 0 logs what it had to change)."""
    plan = plan_distribution(options.strategy, options.num_gpus, options.num_nodes, accelerator,
                             find_unused_parameters=bool(getattr(module, "ddp_find_unused_parameters", False)),
                             single_optimizer=not getattr(module, "use_disc", False))
    if rank == 0:
        for line in plan.notes:
            log.warning("%s", line)
    return plan


def fit(trainer: pl.Trainer, module: pl.LightningModule, train_dl: DataLoader, val_dl: DataLoader | None,
        ckpt_path: str | None, stop: SaveOnStop, options: TrainOptions, last: Path) -> None:
    """``trainer.fit``, then ``last.ckpt``; a run that ends before ``max_steps`` (signal, callback, data ran
    out) raises :class:`~stable_audio_ops.training.stopping.TrainingStoppedEarly`."""
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


def final_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """The trainer's last logged metrics that are numbers."""
    metrics: dict[str, float] = {}
    for key, value in trainer.callback_metrics.items():
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError):
            continue
    return metrics


# --- the recipe ---------------------------------------------------------------------------------------
def run_training(options: TrainOptions) -> TrainResult:
    """Train as ``options`` say; returns the final checkpoint, last step, MLflow run id and last metrics."""
    apply_thread_setting(options.num_threads)
    rank = process_rank(options.num_gpus)
    seed = rank_seed(options.seed, options.num_gpus)
    pl.seed_everything(seed, workers=True)

    model_config, dataset_config, val_config = load_configs(options)
    save_dir = options.resolved_save_dir()
    ckpt_path = resolve_resume_path(options.ckpt_path, save_dir)
    check_resume_checkpoint(ckpt_path)
    loader = loader_factory(model_config)
    train_dl, val_dl = training_loaders(options, loader, dataset_config, val_config)

    model = create_model_from_config(model_config, source=options.model_config)
    load_initial_weights(model, options)
    module = create_training_module_from_config(model_config, model, source=options.model_config)

    accelerator = resolve_accelerator(options.accelerator)
    precision, note = resolve_precision(options.precision, accelerator)
    if note:
        log.warning("%s", note)
    manual = check_optimization_flags(options, model_config, module)
    plan = distribution(options, module, accelerator, rank)

    # Only rank 0 talks to MLflow (the other ranks would open runs of their own or race on sqlite).
    logger = make_logger(options) if rank == 0 else None
    save_dir.mkdir(parents=True, exist_ok=True)
    last = save_dir / "last.ckpt"
    stop = SaveOnStop(last)  # last.ckpt at the current step on SIGTERM / Ctrl-C
    callbacks: list[pl.Callback] = [make_checkpoint_callback(options, save_dir), EmbedModelConfig(model_config),
                                    stop, RankReport(save_dir / "ranks", seed=seed, batch_size=options.batch_size)]
    if logger is not None:
        demo_source = val_config if val_config is not None else dataset_config
        demo = build_demo_callback(model_config, options, lambda bs: loader(demo_source, bs, False, 0))
        if demo is not None:
            callbacks.append(demo)

    trainer = build_trainer(options, plan, precision, manual, callbacks, logger, save_dir, has_val=val_dl is not None)
    if logger is not None and trainer.is_global_zero:
        log_run_inputs(logger, options, model_config, dataset_config)
    fit(trainer, module, train_dl, val_dl, ckpt_path, stop, options, last)
    run_id = logger.run_id if logger is not None and trainer.is_global_zero else None
    return TrainResult(checkpoint_path=last, last_step=int(trainer.global_step), mlflow_run_id=run_id,
                       metrics=final_metrics(trainer), save_dir=save_dir, global_rank=int(trainer.global_rank))


__all__ = ["run_training"]
