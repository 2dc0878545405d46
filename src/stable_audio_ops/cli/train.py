"""``python train.py`` / ``python -m stable_audio_ops.cli.train``: train a model from JSON configs.

Flags come from defaults.ini (see :mod:`stable_audio_ops.cli.args`), e.g.
``python train.py --model-config conf/base/model_configs/autoencoder_demo.json
--dataset-config conf/base/dataset_configs/demo_notes.json --max-steps 600``.

Exit codes: 0 = trained to ``--max-steps``; 2 = bad input (configs, data, checkpoint); 143 = stopped by
SIGTERM (preemption, ``docker stop``, ``timeout``) and 130 = stopped by Ctrl-C / SIGINT, both after saving
``last.ckpt`` at the current step (resume with ``--ckpt-path last``); 3 = ended before ``--max-steps``
for another reason. Under SLURM, SIGUSR1 saves ``hpc_ckpt_<n>.ckpt`` and requeues the job (Lightning).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from stable_audio_ops.cli.args import parse_args_from_ini
from stable_audio_ops.cli.logs import configure_logging
from stable_audio_ops.errors import StableAudioOpsError


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args_from_ini(argv, prog="train.py", description="Train a stable-audio model (Lightning).")
    # The command's implementation loads torch and Lightning: imported after argument parsing so --help and flag
    # errors answer at once (entry points are the one place project imports wait inside a function).
    from stable_audio_ops.training.options import TrainOptions
    from stable_audio_ops.training.run import run_training
    from stable_audio_ops.training.stopping import TrainingStoppedEarly

    configure_logging()
    options, unused = TrainOptions.from_mapping(vars(args))
    for key in unused:
        print(f"note: ini key {key!r} is not used by stable-audio-ops training", file=sys.stderr)
    save_dir = options.resolved_save_dir()
    print(f"checkpoints: {save_dir}")
    try:
        result = run_training(options)
    except TrainingStoppedEarly as exc:  # preempted or ended before max_steps: never exit 0 (see module doc)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except StableAudioOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.global_rank != 0:  # the other DDP processes end quietly; rank 0 reports the run
        return 0
    print(f"final checkpoint: {result.checkpoint_path} (step {result.last_step})")
    if result.mlflow_run_id:
        print(f"MLflow run: {result.mlflow_run_id} in {options.mlflow_tracking_uri} "
              f"(experiment {options.mlflow_experiment!r}; browse with "
              f"`mlflow ui --backend-store-uri {options.mlflow_tracking_uri}`)")
    print(f"export the model: python unwrap_model.py --ckpt-path {result.checkpoint_path} "
          f"--model-config {options.model_config} --name {options.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
