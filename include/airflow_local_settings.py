"""Airflow's local settings hook (``airflow_local_settings``), found on ``PYTHONPATH``.

The LocalExecutor runs every task in a process forked from the scheduler. Importing the
libraries the bundle's tasks use (pandas, pyarrow, scikit-learn, MLflow, Great Expectations
and the ``mlplatform`` modules over them) once in the scheduler lets each task start with
them loaded, instead of paying seconds of imports per task. Only the scheduler does it;
``MLPLATFORM_PRELOAD=off`` turns it off.
"""

from __future__ import annotations

import importlib
import os
import sys

PRELOADED = (
    "pandas",
    "pyarrow.parquet",
    "sklearn.ensemble",
    "mlflow.pyfunc",
    "great_expectations",
    "mlplatform.contracts",
    "mlplatform.training",
    "mlplatform.registry",
    "mlplatform.scoring",
    "mlplatform.monitoring",
)

if sys.argv[1:2] == ["scheduler"] and os.getenv("MLPLATFORM_PRELOAD", "on") != "off":
    for _module in PRELOADED:
        importlib.import_module(_module)
