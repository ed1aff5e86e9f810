"""Experiments: wire core and heads to data, search (Optuna), tracking (MLflow) and metrics."""
