"""MLflow tracking and registry helpers: lineage tags (git commit, DVC data hash), model registration with
aliases (``challenger`` / ``champion``), the promotion rule, and downloading/loading registered models.
The pyfunc shipped inside every registered model is a serving front end: :mod:`stable_audio_ops.serving.pyfunc_model`.

Kedro-free: the Kedro hook (pipelines/hooks.py) and the evaluation pipeline call into this package.
"""
