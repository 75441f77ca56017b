"""Conventions every generated DAG shares: ids, tags, default arguments, Assets.

DAG files stay thin: they loop over the use-case specs and call these helpers, so each
stage's DAG looks and behaves the same for every model. Only light imports here: this
module is imported at DAG parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset

from mlplatform.core.spec import UseCase, load_all

STAGES = ("validate", "train", "promote", "batch_score", "deploy", "monitor")

# The embedded default's closed-loop simulation replays past months by triggering runs; the
# wall-clock schedules would only add runs for today's months, so it sets this to "off".
SCHEDULES_ENABLED = os.getenv("MLPLATFORM_SCHEDULES", "on") != "off"


def use_cases() -> list[UseCase]:
    """The use cases DAGs are generated for (every shipped spec)."""
    return load_all()


def dag_id(use_case: UseCase, stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return f"{use_case.name}_{stage}"


def schedule(use_case: UseCase, stage: str) -> str | None:
    """The spec's cron or preset for a time-scheduled stage, or ``None`` when schedules are off."""
    if not SCHEDULES_ENABLED:
        return None
    return {
        "validate": use_case.schedules.validate_,
        "batch_score": use_case.schedules.batch_score,
        "monitor": use_case.schedules.monitor,
    }[stage]


def tags(use_case: UseCase, stage: str) -> list[str]:
    return ["mlplatform", f"use_case:{use_case.name}", f"stage:{stage}", f"level:{use_case.maturity_level}"]


def start_date(use_case: UseCase) -> datetime:
    """The first day of the spec's ``start_month`` at midnight UTC."""
    from datetime import UTC

    return datetime.strptime(use_case.start_month, "%Y-%m").replace(tzinfo=UTC)


def default_args(use_case: UseCase, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "owner": use_case.owner,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
    }
    args.update(overrides)
    return args


# Asset URIs use an ``x-`` scheme: Airflow normalises any other scheme through the
# providers' URI handlers, and loading those imports boto3 at DAG parse time.


def validated_asset(use_case: UseCase) -> Asset:
    """Updated each time a new validated snapshot of a month becomes current."""
    return Asset(
        name=f"{use_case.name}_validated", uri=f"x-mlplatform://{use_case.name}/validated", group="validated"
    )


def model_asset(use_case: UseCase, alias: str) -> Asset:
    """Updated each time the registry alias (``challenger`` or ``champion``) moves."""
    return Asset(
        name=f"{use_case.name}_{alias}", uri=f"x-mlplatform://{use_case.name}/model/{alias}", group="model"
    )


def predictions_asset(use_case: UseCase) -> Asset:
    """Updated each time a month's batch predictions are written."""
    return Asset(
        name=f"{use_case.name}_predictions",
        uri=f"x-mlplatform://{use_case.name}/predictions",
        group="predictions",
    )
