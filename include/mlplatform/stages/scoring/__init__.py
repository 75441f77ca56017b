"""Batch scoring: a month's validated snapshot scored by a registered model in bounded memory.

The batch-score DAG resolves the ``champion`` alias to a version once, checks the month's
snapshot against its data contract, streams the snapshot through the model in record
batches of ``serving.batch_rows`` and writes one parquet file, one row group per batch::

    predictions/<use case>/month=YYYY-MM/v<version>-<digest12>/predictions.parquet
    predictions/<use case>/month=YYYY-MM/CURRENT.json    which output is in force, written last

Each prediction row carries ``row_id`` (``<snapshot digest[:16]>-<row index>``: the same
snapshot row always gets the same id, so predictions join to ground truth later),
``row_index``, the model's answer (``prediction`` in the target's unit, or ``label`` and
``probability``), ``model_name``, ``model_version`` and ``snapshot_digest``. What a run
produced travels as a :class:`~mlplatform.core.records.ScoredOutput`.

Re-running a month is safe: the data file is written atomically (a failed run leaves the
previous one untouched) and ``CURRENT.json`` only moves once the new file is complete and
has one row per snapshot row. Superseded outputs stay where they are, addressed by model
version and snapshot digest.

Modules: ``batch`` (the model loaded once; a month's snapshot or any file scored locally;
its ``CURRENT.json`` published), ``transform`` (SageMaker Batch Transform staging and
collection).
"""

from mlplatform.stages.scoring.batch import (
    CheckedSnapshot,
    InputRejected,
    check_month,
    checked_snapshot,
    current_predictions,
    load_model,
    model_inputs,
    model_task,
    month_of_run,
    normalised_batches,
    output_folder,
    output_path,
    predictor,
    publish,
    read_predictions,
    score_batches,
    score_file,
    score_snapshot,
    signature_inputs,
)
from mlplatform.stages.scoring.transform import (
    TRANSFORM_CONTENT_TYPE,
    StagedTransform,
    collect_transform_output,
    stage_transform_input,
    transform_request,
)

__all__ = [
    "TRANSFORM_CONTENT_TYPE",
    "CheckedSnapshot",
    "InputRejected",
    "StagedTransform",
    "check_month",
    "checked_snapshot",
    "collect_transform_output",
    "current_predictions",
    "load_model",
    "model_inputs",
    "model_task",
    "month_of_run",
    "normalised_batches",
    "output_folder",
    "output_path",
    "predictor",
    "publish",
    "read_predictions",
    "score_batches",
    "score_file",
    "score_snapshot",
    "signature_inputs",
    "stage_transform_input",
    "transform_request",
]
