"""Conventions every generated DAG shares: ids, tags, default arguments, Assets, the failure alert.

DAG files stay thin: they loop over the use-case specs and call these helpers, so each
stage's DAG looks and behaves the same for every model. Only light imports here: this
module is imported at DAG parse time.

:class:`FailureNotifier` is the ``on_failure_callback`` in the shared defaults
(:func:`default_args`), so a task that fails for good in any DAG (retries exhausted, a
sensor past its deadline, a crash) posts one Slack message naming the DAG, the task, the
error and a link to the task's log. It is cheap to build at parse time: nothing is looked
up until a task fails. Delivery is :func:`mlplatform.adapters.alerts.send` (queued in the
lake's outbox, then delivered with whatever earlier alerts are still queued: a Slack
connection, else the webhook URL), and it never raises. Failures whose task has already
sent a detailed alert (:class:`~mlplatform.adapters.alerts.AlertedFailure`) are not
reported twice. It lives here, not in :mod:`mlplatform.adapters.alerts`, which stays free
of Airflow so the serving image and the command line can alert without it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from airflow.sdk import DAG, Asset, Param
from airflow.sdk.bases.notifier import BaseNotifier

from mlplatform.adapters import alerts
from mlplatform.core import months
from mlplatform.core.spec import UseCase, load_all

if TYPE_CHECKING:
    from mlplatform.core.records import ScoredOutput

STAGES = ("ingest", "validate", "train", "promote", "batch_score", "deploy", "monitor")

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
        # Raw months land on the validation cadence; validation then follows the raw Asset.
        "ingest": use_case.schedules.ingest,
        "validate": use_case.schedules.ingest,
        "batch_score": use_case.schedules.batch_score,
    }[stage]


def follows(asset: Asset, *either: Asset) -> Any:
    """The schedule of a stage that follows ``asset`` (or any of ``either`` besides), or
    ``None`` when schedules are off (the embedded closed loop triggers every stage itself,
    one month at a time)."""
    if not SCHEDULES_ENABLED:
        return None
    if not either:
        return [asset]
    condition: Any = asset
    for other in either:
        condition = condition | other
    return condition


def stage_dag(
    use_case: UseCase,
    stage: str,
    *,
    schedule: Any,
    doc_md: str | None,
    params: Mapping[str, Param],
    max_active_runs: int = 1,
) -> DAG:
    """The DAG of one stage of one use case, with the arguments every stage's DAG shares.

    No catchup: past months are run on purpose, with a param or a backfill.
    """
    return DAG(
        dag_id=dag_id(use_case, stage),
        schedule=schedule,
        start_date=start_date(use_case),
        catchup=False,
        max_active_runs=max_active_runs,
        tags=tags(use_case, stage),
        default_args=default_args(use_case),
        doc_md=doc_md,
        params=dict(params),
    )


def month_param(description: str, title: str = "Month", *, default: str | None = None) -> Param:
    """A month on the trigger form, ``YYYY-MM`` as :mod:`mlplatform.core.months` spells it.

    Empty by default (``None``); with ``default=""`` the field is a string that may stay blank.
    """
    if default is None:
        pattern, kinds = f"^{months.MONTH_PATTERN}$", ["null", "string"]
        return Param(None, type=kinds, pattern=pattern, title=title, description=description)
    pattern = f"^({months.MONTH_PATTERN})?$"
    return Param(default, type="string", pattern=pattern, title=title, description=description)


def backfill_param() -> Param:
    """The trigger form's switch for recomputing history quietly."""
    return Param(
        False,
        type="boolean",
        title="Backfill",
        description="Recompute history: write the records as usual, but send no alerts about what they "
        "show and trigger no retrain. Runs created by `airflow backfill` are backfills anyway.",
    )


def event_extras(triggering_asset_events: Any, of: Asset | None = None) -> list[Mapping[str, Any]]:
    """The extras of the Asset events that started this run, oldest first (none for other
    runs); with ``of``, only the events of that Asset."""
    if not triggering_asset_events:
        return []
    return [
        dict(getattr(event, "extra", None) or {})
        for asset in triggering_asset_events
        for event in triggering_asset_events[asset]
        if of is None or getattr(getattr(event, "asset", None), "name", None) == of.name
    ]


def event_months(triggering_asset_events: Any, of: Asset | None = None) -> list[str]:
    """The months named by the Asset events that started this run (extra ``month``), oldest first."""
    return [str(extra["month"]) for extra in event_extras(triggering_asset_events, of) if extra.get("month")]


def requested_month(context: Mapping[str, Any]) -> str:
    """The month a run works on: its `month` param, else the newest month the Asset events that
    started it name, else the month its data interval starts in."""
    named = event_months(context.get("triggering_asset_events"))
    month = (context.get("params") or {}).get("month") or (named[-1] if named else None)
    return str(month or context["data_interval_start"].strftime("%Y-%m"))


def predictions_event(output: ScoredOutput, context: Mapping[str, Any]) -> dict[str, Any]:
    """The extra of the predictions Asset event a run emits (what the monitor DAG reads), marked
    ``backfill`` when the run recomputes history."""
    return {
        "month": output.month,
        "model_version": output.model.version,
        "uri": output.uri,
        "backfill": is_backfill(context.get("params"), context.get("dag_run")),
    }


def is_backfill(params: Any, dag_run: Any, extras: Sequence[Mapping[str, Any]] = ()) -> bool:
    """Whether this run recomputes history: the `backfill` param, a run of `airflow backfill`
    (run type ``backfill``), or Asset events that a backfill run emitted."""
    run_type = getattr(dag_run, "run_type", None)
    return (
        bool((params or {}).get("backfill"))
        or str(getattr(run_type, "value", run_type)) == "backfill"
        or any(extra.get("backfill") for extra in extras)
    )


class FailureNotifier(BaseNotifier):
    """Alert Slack about a task that failed for good, with a link to its log."""

    def __init__(self, use_case: str, stage: str | None = None) -> None:
        super().__init__()
        self.use_case = use_case
        self.stage = stage

    def __repr__(self) -> str:
        return f"FailureNotifier({self.use_case!r}, {self.stage!r})"

    def notify(self, context: Any) -> None:
        """Send the failure alert; silent for failures that already alerted.

        Either way the outbox is flushed first: alerts an earlier task could not deliver
        (Slack was down) go out before this one.
        """
        alerts.flush()
        if getattr(context.get("exception"), "alerted", False):
            return
        ti = context.get("ti") or context.get("task_instance")
        stage = self.stage or str(getattr(ti, "dag_id", "?")).removeprefix(f"{self.use_case}_")
        alerts.send(alerts.failure_alert(self.use_case, stage, context))


def tags(use_case: UseCase, stage: str) -> list[str]:
    return ["mlplatform", f"use_case:{use_case.name}", f"stage:{stage}", f"level:{use_case.maturity_level}"]


def start_date(use_case: UseCase) -> datetime:
    """The first day of the spec's ``start_month`` at midnight UTC."""
    from datetime import UTC

    return datetime.strptime(use_case.start_month, "%Y-%m").replace(tzinfo=UTC)


def default_args(use_case: UseCase, **overrides: Any) -> dict[str, Any]:
    """Arguments every task of every DAG shares, among them the failure notifier.

    Airflow calls ``on_failure_callback`` once a task has failed for good (after its
    retries), so each failure alerts once, with a link to the task's log. The DAG integrity
    test fails a DAG whose tasks lack it.
    """
    return {
        "owner": use_case.owner,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "on_failure_callback": FailureNotifier(use_case.name),
        **overrides,
    }


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


def raw_asset(use_case: UseCase) -> Asset:
    """Updated each time the ingest DAG lands a new raw month (extra: ``month``)."""
    return Asset(name=f"{use_case.name}_raw", uri=f"x-mlplatform://{use_case.name}/raw", group="raw")


def predictions_asset(use_case: UseCase) -> Asset:
    """Updated each time a month's batch predictions are written."""
    return Asset(
        name=f"{use_case.name}_predictions",
        uri=f"x-mlplatform://{use_case.name}/predictions",
        group="predictions",
    )


# What crosses XCom is the JSON form of the typed records (``to_dict``/``from_dict``), as
# it always was; task bodies see only the records. A record class of a heavy module is named
# as the task bodies import it (``training.TrainingSet``, with ``training`` imported under
# ``TYPE_CHECKING`` in the DAG file): the annotation is read when the task runs, and a module
# name it uses is looked up among mlplatform's packages then.
P = ParamSpec("P")
R = TypeVar("R")


def records(task_body: Callable[P, R]) -> Callable[P, R]:
    """Let a task take and return typed records: the one conversion at the XCom edge.

    An argument annotated with a record class (one with ``from_dict``), optionally
    ``| None`` or in a ``list`` or ``dict`` of them, is read from its XCom JSON; returned
    records (also in a list or dict) go back as their ``to_dict()``. Put it under ``@task``:
    Airflow still sees the body's own signature.
    """

    @functools.wraps(task_body)
    def at_the_edge(*args: P.args, **kwargs: P.kwargs) -> R:
        import inspect

        bound = inspect.signature(task_body).bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            bound.arguments[name] = _from_json(_annotation(task_body, name), value)
        return _to_json(task_body(*bound.args, **bound.kwargs))  # type: ignore[no-any-return]

    return at_the_edge


def _annotation(task_body: Callable[..., Any], name: str) -> Any:
    """The annotation of the argument ``name``, read in the body's module (``None`` if unreadable)."""
    annotation = task_body.__annotations__.get(name)
    if isinstance(annotation, str):
        try:
            return eval(annotation, getattr(task_body, "__globals__", {}), _PackageModules())
        except Exception:
            return None
    return annotation


def _from_json(annotation: Any, value: Any) -> Any:
    """``value`` as ``annotation`` says, where that names record classes; else as it is."""
    import types
    import typing

    if value is None or annotation is None:
        return value
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return _from_json(next((a for a in arguments if a is not type(None)), None), value)
    if origin is list and arguments and isinstance(value, list):
        return [_from_json(arguments[0], item) for item in value]
    if origin is dict and len(arguments) == 2 and isinstance(value, Mapping):
        return {key: _from_json(arguments[1], item) for key, item in value.items()}
    if isinstance(annotation, type) and hasattr(annotation, "from_dict") and isinstance(value, Mapping):
        return annotation.from_dict(value)
    return value


class _PackageModules(dict[str, ModuleType]):
    """Names an annotation uses that its module imports only for type checking: mlplatform's modules."""

    def __missing__(self, name: str) -> ModuleType:
        import importlib

        for package in ("mlplatform.stages", "mlplatform.adapters", "mlplatform.core"):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError:
                continue
        raise KeyError(name)


def _to_json(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    return value
