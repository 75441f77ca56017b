"""Training on raw TLC files outside Airflow (``mlplatform train``), with the DAG's code."""

from __future__ import annotations

import json
from typing import Any, cast

from mlplatform.core.spec import UseCase
from mlplatform.stages.training.dataset import MAX_VALIDATION_ROWS, read_tlc_files, report_range, sample
from mlplatform.stages.training.evaluation import Evaluation
from mlplatform.stages.training.fitting import Fitted, train_frames
from mlplatform.stages.training.tracking import log_run


def train_files(
    use_case: UseCase,
    train_paths: list[str],
    valid_paths: list[str],
    *,
    family: str | None = None,
    track: bool = False,
    reason: str = "",
) -> dict[str, Any]:
    """Train on raw TLC files and validate on others, with the code the train DAG runs.

    Returns :func:`summary`; with ``track`` the run is also logged to the tracking server
    (the files as dataset inputs with their SHA-256), without registering a version.
    """
    train, train_lineage = read_tlc_files(use_case, train_paths)
    valid, valid_lineage = read_tlc_files(use_case, valid_paths)
    outside = {
        "training": sum(f["rows_outside_range"] for f in train_lineage),
        "validation": sum(f["rows_outside_range"] for f in valid_lineage),
    }
    report_range(use_case, "training", len(train), outside["training"])
    report_range(use_case, "validation", len(valid), outside["validation"])
    train = sample(train, use_case.training.sample_rows)
    valid = sample(valid, MAX_VALIDATION_ROWS)
    fitted, evaluation, baseline = train_frames(use_case, train, valid, family)
    result = summary(fitted, evaluation, baseline)
    result.update(train_rows=len(train), validation_rows=len(valid), rows_outside_range=outside)
    result.update(train_files=train_lineage, validation_files=valid_lineage)
    if track:
        lineage = [
            {**f, "role": role}
            for role, files in (("training", train_lineage), ("validation", valid_lineage))
            for f in files
        ]
        assembled = {"train_rows": len(train), "lineage": lineage, "rows_outside_range": outside}
        logged = log_run(use_case, fitted, evaluation, baseline, valid, assembled=assembled, reason=reason)
        result.update(run_id=logged["run_id"], model_uri=logged["model_uri"])
    return result


def summary(fitted: Fitted, evaluation: Evaluation, baseline: Evaluation) -> dict[str, Any]:
    """A JSON-able account of a training (what the command line prints)."""
    account = {
        "family": fitted.family,
        "params": fitted.params,
        "fit_seconds": round(fitted.seconds, 2),
        "validation": evaluation.to_dict(),
        "baseline": baseline.overall,
        "search": fitted.search,
    }
    # A round trip through JSON turns numpy scalars into plain numbers.
    return cast(dict[str, Any], json.loads(json.dumps(account, default=float)))
