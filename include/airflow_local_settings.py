"""Airflow's local settings hook (``airflow_local_settings``), found on ``PYTHONPATH``.

The LocalExecutor runs every task in a process forked from the scheduler. Importing the
third-party libraries the bundle's tasks use (pandas, pyarrow, scikit-learn, MLflow, Great
Expectations, Evidently, matplotlib) once in the scheduler lets each task start with them
loaded, instead of paying seconds of imports per task. The ``mlplatform`` package itself is
not preloaded, so tasks always run the code that is there now. Only the scheduler does it;
``MLPLATFORM_PRELOAD=off`` turns it off.
"""

from __future__ import annotations

import importlib
import os
import sys

PRELOADED = (
    "pandas",
    "pyarrow.compute",
    "pyarrow.parquet",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "mlflow.models",
    "mlflow.pyfunc",
    "great_expectations",
    "evidently",
    "matplotlib.pyplot",
)

if sys.argv[1:2] == ["scheduler"] and os.getenv("MLPLATFORM_PRELOAD", "on") != "off":
    import matplotlib

    matplotlib.use("Agg")  # tasks only ever render to files
    for _module in PRELOADED:
        importlib.import_module(_module)
