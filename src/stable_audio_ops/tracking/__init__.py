"""MLflow tracking and registry helpers: lineage tags (git commit, DVC data hash), model registration with
aliases (``challenger`` / ``champion``), the promotion rule, and the pyfunc that serves registered models.

Kedro-free: the Kedro hook (pipelines/hooks.py) and the evaluation pipeline call into this package.
"""
