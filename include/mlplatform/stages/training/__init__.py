"""Training: from validated snapshots to a tracked model run in MLflow.

The train DAG runs three steps as tasks, passing URIs and ids; the command line
(``mlplatform train``) runs the same functions in one process on any TLC files
(:func:`train_files`, ``job``).

1. :func:`assemble_training_set` (``dataset``): the current validated snapshots of the spec's
   window (``training.window_months``), split by time: the newest ``training.validation_months``
   are held out for validation, the older months are trained on (uniformly sampled down
   to ``training.sample_rows``). A retrain after a breach can start at the breached month
   (``since``): with too few months left, their last days are held out instead. Only the
   rows the spec models (``data.filter``) and the target (``target.column`` or
   ``target.expression``) are kept, and of those only the trips whose target lies in the
   spec's modelling range (``target.range``, e.g. 1 to 60 minutes), in training and
   validation alike; the rows the range leaves out are counted, logged and tracked
   (``rows_outside_range.<role>``). Written to the lake as
   ``features/<use case>/training/<key>/{train,validation}.parquet`` with the lineage
   (month, digest, rows of every snapshot) beside them: a :class:`TrainingSet`.
2. :func:`fit` (``fitting``): the baseline family and the chosen family (by default the spec's
   ``model.family``) from the use case's model module. The default family gets a small,
   bounded hyperparameter search (scikit-learn's parameter grid of ``model.search``, at most
   ``model.max_search_trials`` trials) scored on a random fifth of a training subsample,
   never on the validation months; the best is refitted on the whole training sample.
   :func:`evaluate` (``fitting`` too) measures a model overall and per slice.
3. :func:`log_run` (``tracking``): params, validation metrics overall and per slice
   (``promotion.slices``), the baseline's metrics on the same rows, dataset lineage
   (``mlflow.log_input``, one input per snapshot, with its SHA-256), plots, the
   code version and the Airflow run id, and the model as a self-contained
   :class:`~mlplatform.core.modelling.TripModel` pyfunc with signature and input example.
   Registration is :mod:`mlplatform.adapters.registry`'s.

On AWS step 2 and 3 run as a SageMaker Training job (``job``: :func:`job_request` and
:func:`read_job_output`; the job is ``python -m mlplatform.jobs train``).

Metric names: ``val_<metric>`` overall, ``val_<metric>.<slice column>.<value>`` per
slice, ``baseline_val_<metric>`` for the baseline, ``rows_outside_range.training`` and
``rows_outside_range.validation`` for the labelled rows ``target.range`` left out (the
range itself is the ``target_range`` param).
"""

import os

# Airflow workers and this machine share cores with other work; OpenMP threads that spin
# while waiting (libgomp's default) slow scikit-learn's gradient boosting several-fold
# when the cores are busy. Passive waiting costs nothing when they are idle. This only
# takes effect when OpenMP is first loaded after this import, which is the case in a task.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mlplatform.stages.training.dataset import (
    MAX_VALIDATION_ROWS,
    VALIDATION_DAYS,
    TrainingSet,
    assemble_training_set,
    labelled,
    labelled_and_excluded,
    on_new_data,
    read_set,
    read_tlc_files,
    sample,
    select_window,
    source_columns,
    split_within,
)
from mlplatform.stages.training.fitting import (
    MIN_SLICE_ROWS,
    Fitted,
    ModelEvaluation,
    SearchTrial,
    evaluate,
    fit,
    primary_metric,
    search_trials,
    train_frames,
    validate,
)
from mlplatform.stages.training.job import job_request, read_job_output, train_files
from mlplatform.stages.training.tracking import (
    bundle_tags,
    figures,
    fit_and_log,
    log_run,
    model_signature,
)

__all__ = [
    "MAX_VALIDATION_ROWS",
    "MIN_SLICE_ROWS",
    "VALIDATION_DAYS",
    "Fitted",
    "ModelEvaluation",
    "SearchTrial",
    "TrainingSet",
    "assemble_training_set",
    "bundle_tags",
    "evaluate",
    "figures",
    "fit",
    "fit_and_log",
    "job_request",
    "labelled",
    "labelled_and_excluded",
    "log_run",
    "model_signature",
    "on_new_data",
    "primary_metric",
    "read_job_output",
    "read_set",
    "read_tlc_files",
    "sample",
    "search_trials",
    "select_window",
    "source_columns",
    "split_within",
    "train_files",
    "train_frames",
    "validate",
]
