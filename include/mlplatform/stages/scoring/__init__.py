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

Modules: ``model`` (loading, inputs, predictor), ``batch`` (local scoring), ``publishing``
(``CURRENT.json``), ``transform`` (SageMaker Batch Transform staging and collection),
``files`` (any file, outside Airflow).
"""

from mlplatform.stages.scoring.batch import (
    DATA_FILE,
    InputRejected,
    answer_columns,
    answer_schema,
    checked_snapshot,
    modelled_batches,
    month_of_run,
    output_folder,
    output_path,
    read_columns,
    row_ids,
    score_batches,
    score_snapshot,
    write_predictions,
)
from mlplatform.stages.scoring.files import normalised_batches, score_file
from mlplatform.stages.scoring.model import load_model, model_inputs, model_task, predictor
from mlplatform.stages.scoring.publishing import (
    POINTER,
    current_predictions,
    publish,
    read_predictions,
)
from mlplatform.stages.scoring.transform import (
    TRANSFORM_CONTENT_TYPE,
    collect_transform_output,
    signature_inputs,
    stage_transform_input,
    transform_request,
)

__all__ = [
    "DATA_FILE",
    "POINTER",
    "TRANSFORM_CONTENT_TYPE",
    "InputRejected",
    "answer_columns",
    "answer_schema",
    "checked_snapshot",
    "collect_transform_output",
    "current_predictions",
    "load_model",
    "model_inputs",
    "model_task",
    "modelled_batches",
    "month_of_run",
    "normalised_batches",
    "output_folder",
    "output_path",
    "predictor",
    "publish",
    "read_columns",
    "read_predictions",
    "row_ids",
    "score_batches",
    "score_file",
    "score_snapshot",
    "signature_inputs",
    "stage_transform_input",
    "transform_request",
    "write_predictions",
]
