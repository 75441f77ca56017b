"""The closed loop, simulated month by month on the embedded default (``make run``).

Months of TLC-format trips land in the lake one after the other and go through the real
Airflow scheduler exactly as in production, driven through Airflow's REST API as an
operator would from the UI:

1. ``<use case>_validate`` runs the contract on the month; its validated Asset starts
   ``<use case>_train``, which trains the first model once two months are validated
   (``training.on_new_data: first_model``), and the challenger and champion Assets chain
   ``_promote`` and ``_deploy`` (the serving app switches to the new champion).
2. With a champion in production, ``<use case>_batch_score`` scores the month, a few
   hundred trips are sent to the serving app in real time, and ``<use case>_monitor``
   compares the month's performance (delayed ground truth: the month's validated trips)
   and drift to the spec's thresholds.
3. From a chosen month the generator's drift knobs make every trip slower (congestion) and
   move pickups to the outer boroughs. Monitoring sees the performance drop and the drift,
   alerts Slack and triggers ``<use case>_train`` on the changed month; the new model
   passes the gates, is promoted and deployed, and the next month performs again.
4. Production truth decides (the use case is at maturity level 4, so the monitor acts). The
   loop proposes challengers for a live trial as a data scientist would: trained with the
   training stage (in a process of its own, ``python -m mlplatform.dev.closed_loop``) and
   registered as ``challenger`` (no offline decision: only the live labels decide). The
   monitor scores the challenger in shadow on the month's labelled trips and decides on the paired evidence
   (:mod:`mlplatform.core.evidence`): a challenger trained on a 2,000-trip sample loses and is
   retired, one trained on every month so far wins and is promoted. A drift that lasts one
   month (a passing disruption) makes the retrain on it a bad promotion: it passes the
   offline gates on the disrupted month, the old regime returns, the previous champion
   (scored in shadow) is better on the next month's labels, and the monitor rolls back, with
   the rollback cooldown against flapping.

``make run`` plays :data:`DEMO`: six months, the first a short one (the platform started
mid-month, so the first champion learns from 12,000 trips), the weak challenger after month
2, the strong one after month 3, a one-month drift in month 5 and its rollback in month 6.

With ``--data DIR`` the months are real TLC monthly files instead (``green_tripdata_2021-01
.parquet``, ``yellow_tripdata_2024-03.parquet``, ...): each month of the folder lands as TLC
published it, in month order, and goes through the same loop; nothing is injected, so what
monitoring sees is the real month-to-month change.

The run ends with a month-by-month summary (contract result, champion version, RMSE,
drift, actions taken) and the live decisions (window, decision, version, interval,
labelled trips), the same as JSON (one object per month) and a PNG chart of RMSE and
drift over time with the alias moves, then says where everything is and how long it took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from mlplatform.adapters import settings, snapshots
from mlplatform.airflow.use_case_status import WindowVerdict, window_verdicts
from mlplatform.core import tlc
from mlplatform.core.months import sequence
from mlplatform.core.tlc import TaxiType
from mlplatform.dev.airflow_api import AirflowClient, AirflowError
from mlplatform.dev.embedded import Platform

if TYPE_CHECKING:
    from mlplatform.core.generator import Drift
    from mlplatform.core.records import AliasEvent

USE_CASE = "taxi_trip_duration"
STAGES = ("validate", "train", "promote", "deploy", "batch_score", "monitor")
SERVED_TRIPS = 300
"""Trips of each month sent to the serving app in real time (its log is monitored too)."""
SERVED_BATCH = 10
RUN_TIMEOUT_S = 900.0


@dataclass
class Scenario:
    """What the simulation does: how many months of how many trips, and the drift."""

    months: int = 5
    rows: int = 30_000
    first_month_rows: int | None = None
    """Trips of the first month when it is short (the platform started mid-month): the first
    champion, trained on it alone, learns from little data. ``None``: ``rows``."""
    start: str = "2024-01"
    drift_from: int = 4
    """The first drifted month (1-based); every later month drifts too."""
    congestion: float = 1.3
    outer_borough_shift: float = 0.5
    drift_months: int | None = None
    """How many months the drift lasts (``None``: every later month drifts too). A one-month
    drift is a passing disruption: the old regime returns after it."""
    weak_challenger_after: int | None = None
    """After this month (1-based) the loop proposes :data:`WEAK` for a live trial (``None``: never)."""
    strong_challenger_after: int | None = None
    """After this month the loop proposes :data:`STRONG` for a live trial (``None``: never)."""
    data: Path | None = None
    """A folder of real TLC monthly files to replay instead of generated months."""

    def month_names(self) -> list[str]:
        if self.data is not None:
            return sorted(real_files(self.data))
        return sequence(self.start, self.months)

    def month_rows(self, index: int) -> int:
        short = index == 0 and self.first_month_rows is not None
        return min(self.first_month_rows or self.rows, self.rows) if short else self.rows

    def drifted(self, index: int) -> bool:
        after = index + 1 - self.drift_from
        return self.data is None and after >= 0 and (self.drift_months is None or after < self.drift_months)

    def drift(self, index: int) -> Drift:
        from mlplatform.core.generator import Drift

        if not self.drifted(index):
            return Drift()
        return Drift(congestion=self.congestion, outer_borough_shift=self.outer_borough_shift)

    def trial(self, index: int) -> ChallengerTrial | None:
        """The challenger proposed for a live trial after the month, if any (none on real months)."""
        if self.data is not None:
            return None
        return {self.weak_challenger_after: WEAK, self.strong_challenger_after: STRONG}.get(index + 1)


@dataclass(frozen=True)
class ChallengerTrial:
    """A version proposed as ``challenger`` for a live trial, trained by the training stage
    on the validated months so far (all of them, ``sample_rows`` trips at most)."""

    name: str
    sample_rows: int | None = None

    def describe(self) -> str:
        if self.sample_rows is None:
            return f"{self.name}: trained on every validated month so far"
        return f"{self.name}: trained on a sample of {self.sample_rows:,} trips"


WEAK = ChallengerTrial("weak challenger", sample_rows=2_000)
"""Too little data: a deliberately weakened challenger that production truth retires."""
STRONG = ChallengerTrial("strong challenger")
"""Over three times the data of the first champion (trained on the short first month alone):
better by several percent, and promoted."""
TRIALS = {"weak": WEAK, "strong": STRONG}

DEMO = Scenario(
    months=6,
    first_month_rows=12_000,
    drift_from=5,
    drift_months=1,
    weak_challenger_after=2,
    strong_challenger_after=3,
)
"""What ``make run`` plays: the three live stories on generated months (see the module docstring)."""


def real_files(folder: Path) -> dict[str, dict[TaxiType, Path]]:
    """The TLC monthly files in ``folder`` by month and taxi type (TLC's own file names)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of TLC monthly files")
    found: dict[str, dict[TaxiType, Path]] = {}
    for path in sorted(folder.iterdir()):
        named = tlc.parse_file_name(path.name)
        if path.is_file() and named is not None and named.taxi_type is not None:
            found.setdefault(named.month, {})[named.taxi_type] = path
    if not found:
        raise FileNotFoundError(f"{folder}: no TLC monthly files (named like green_tripdata_2021-01.parquet)")
    return found


@dataclass
class MonthRecord:
    """One month of the summary."""

    month: str
    drift_injected: bool
    contract: str = "not run"
    champion_version: str | None = None
    rmse: float | None = None
    rmse_reference: float | None = None
    drift_share: float | None = None
    drift_threshold: float | None = None
    monitor_status: str | None = None
    """The model's verdict (``ok``, ``breach``, ``pending``): what the loop decides on."""
    breaches: list[str] = field(default_factory=list)
    """The model's breaches (performance, drift, data quality)."""
    actions: list[str] = field(default_factory=list)
    serving_status: str | None = None
    """The endpoint's verdict (error rate, latency): operations, never a retrain."""
    serving_breaches: list[str] = field(default_factory=list)
    live: list[WindowVerdict] = field(default_factory=list)
    """The month's live decisions on production truth (the challenger's, the rollback watch's)."""

    def decisions(self) -> MonthDecisions:
        """What the loop decided this month: the model's verdict, a retrain, a promotion.

        Never the serving figures: they depend on how busy the machine is.
        """
        return MonthDecisions(
            month=self.month,
            model_status=self.monitor_status,
            retrain=any(a.startswith("monitoring triggered a retrain") for a in self.actions),
            promoted=[a.removeprefix("promoted version ") for a in self.actions if a.startswith("promoted")],
            live=[f"{v.kind} {v.outcome} v{v.version}" for v in self.live if v.acted],
        )


@dataclass(frozen=True)
class MonthDecisions:
    """What the loop decided in a month: two runs of a scenario decide the same, busy or not."""

    month: str
    model_status: str | None
    """The model's verdict (``ok``, ``breach``, ``pending``), ``None`` before the first model."""
    retrain: bool
    """Monitoring triggered a retrain."""
    promoted: list[str]
    """The versions promoted to champion by the offline gates."""
    live: list[str] = field(default_factory=list)
    """The live decisions acted on (``challenger promote v3``, ``rollback promote v3``)."""


class ClosedLoop:
    """Drives one use case of a running platform through Airflow's REST API."""

    def __init__(self, platform: Platform, scenario: Scenario) -> None:
        from mlplatform.adapters.lake import Lake
        from mlplatform.core import spec

        self.platform = platform
        self.scenario = scenario
        self.lake = Lake(platform.env()["MLPLATFORM_LAKE_URI"])
        self.use_case = spec.load_spec(USE_CASE)
        self.airflow = AirflowClient(platform.airflow_url, "admin", platform.airflow_password())
        self._alerts_seen = len(self.alerts())

    def dag(self, stage: str) -> str:
        return f"{USE_CASE}_{stage}"

    def prepare(self) -> None:
        """Wait for the DAGs to be parsed and unpause the use case's stages."""
        dag_ids = [self.dag(s) for s in STAGES]
        self.airflow.wait_for_dags(dag_ids, timeout_s=600)
        for dag_id in dag_ids:
            self.airflow.set_paused(dag_id, False)

    # -- what the platform says -------------------------------------------------------------
    def champion(self) -> str | None:
        from mlflow import MlflowClient

        from mlplatform.adapters import registry

        client = MlflowClient(self.platform.mlflow_url, self.platform.mlflow_url)
        return registry.alias_version(client, self.use_case.model_name, "champion")

    def alerts(self) -> list[str]:
        """The text of every message the Slack sink has received, oldest first."""
        messages = httpx.get(f"{self.platform.sink_url}/messages", timeout=10).json()
        return [str(m.get("text", "")) for m in messages]

    def new_alerts(self) -> list[str]:
        """The first line of each alert received since the last call."""
        texts = self.alerts()
        fresh, self._alerts_seen = texts[self._alerts_seen :], len(texts)
        return [text.splitlines()[0][:100] for text in fresh]

    def run_ids(self, stage: str) -> set[str]:
        return {r.dag_run_id for r in self.airflow.runs(self.dag(stage))}

    def task_states(self, stage: str, run_id: str) -> dict[str, str | None]:
        return {t.task_id: t.state for t in self.airflow.task_instances(self.dag(stage), run_id)}

    # -- runs ----------------------------------------------------------------------------
    def run(self, stage: str, conf: Mapping[str, str]) -> tuple[str, str]:
        """Trigger ``stage`` with ``conf`` and wait for it; returns (run id, final state)."""
        run_id = self.airflow.trigger(self.dag(stage), conf)
        return run_id, self.airflow.wait(self.dag(stage), run_id, RUN_TIMEOUT_S)

    def next_run(self, stage: str, before: set[str], timeout_s: float = 120) -> tuple[str, str]:
        """Wait for a run of ``stage`` that is not in ``before`` (the scheduler starts it
        from an Asset event or the monitor triggers it) and for it to end."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if fresh := self.run_ids(stage) - before:
                run_id = sorted(fresh)[-1]
                return run_id, self.airflow.wait(self.dag(stage), run_id, RUN_TIMEOUT_S)
            time.sleep(1)
        raise AirflowError(f"no new {self.dag(stage)} run started within {timeout_s:.0f}s")

    def follow_training(self, before: dict[str, set[str]], record: MonthRecord, why: str) -> None:
        """Follow a train run through promotion and deployment, noting what happened."""
        champion = self.champion()
        run_id, state = self.next_run("train", before["train"])
        states = self.task_states("train", run_id)
        if state != "success":
            record.actions.append(f"{why}: training failed ({run_id})")
            return
        if states.get("register_challenger") != "success":
            return  # new data, but the spec leaves retraining to monitoring
        record.actions.append(f"{why}: trained a challenger")
        self.next_run("promote", before["promote"])
        if self.champion() == champion:
            record.actions.append("challenger rejected by the gates")
            return
        record.actions.append(f"promoted version {self.champion()}")
        _, state = self.next_run("deploy", before["deploy"])
        record.actions.append("deployed to serving" if state == "success" else "deployment failed")

    def before(self) -> dict[str, set[str]]:
        return {stage: self.run_ids(stage) for stage in ("train", "promote", "deploy")}

    # -- one month ----------------------------------------------------------------------------
    def land(self, record: MonthRecord, index: int) -> None:
        """Land the month: the real files of the folder, or a generated month."""
        from mlplatform.stages import ingest

        dataset = self.use_case.data.dataset
        if self.scenario.data is None:
            ingest.land_generated(
                self.lake,
                dataset,
                self.use_case.data.taxi_type,
                record.month,
                rows := self.scenario.month_rows(index),
                seed=index,
                drift=self.scenario.drift(index),
            )
            record.actions.append(f"landed {rows:,} trips")
            return
        for taxi_type, path in real_files(self.scenario.data)[record.month].items():
            landed = ingest.land_bytes(self.lake, dataset, taxi_type, record.month, path.read_bytes())
            record.actions.append(f"landed {landed.rows:,} {taxi_type} trips")

    def land_and_validate(self, record: MonthRecord, index: int) -> None:
        self.land(record, index)
        before = self.before()
        _, state = self.run("validate", {"month": record.month})
        snapshot = snapshots.current_snapshot(self.lake, USE_CASE, record.month)
        if state != "success" or snapshot is None:
            record.contract = "breached"
            return
        quarantined = (snapshot.manifest.get("contract") or {}).get("bad_row_share") or 0.0
        record.contract = f"passed ({quarantined:.1%} quarantined)" if quarantined else "passed"
        self.follow_training(before, record, "new data")

    def serve(self, month: str) -> None:
        """Send some of the month's trips to the serving app, as an application would."""
        from mlplatform.core.modelling import input_columns

        snapshot = snapshots.current_snapshot(self.lake, USE_CASE, month)
        if snapshot is None:
            return  # nothing validated to serve
        columns = input_columns(self.use_case.features.all)
        trips = snapshots.read_table(self.lake, snapshot, columns).slice(0, SERVED_TRIPS).to_pylist()
        for trip in trips:
            trip["pickup_datetime"] = trip["pickup_datetime"].isoformat()
        with httpx.Client(base_url=self.platform.serving_url, timeout=30) as http:
            for i in range(0, len(trips), SERVED_BATCH):
                http.post("/predict", json={"instances": trips[i : i + SERVED_BATCH]}).raise_for_status()

    def score_and_monitor(self, record: MonthRecord) -> None:
        from mlplatform.core.records import MonitoringRecord
        from mlplatform.stages import monitoring

        self.serve(record.month)  # the app logs to the lake every few seconds, while scoring runs
        _, state = self.run("batch_score", {"month": record.month})
        record.actions.append("batch scored" if state == "success" else "batch scoring failed")
        before = self.before()
        run_id, _ = self.run("monitor", {"window": record.month})
        found = MonitoringRecord.from_dict(
            self.lake.read_json(monitoring.record_path(USE_CASE, record.month))
        )
        values = found.metrics
        # The loop's verdict is the model's: serving latency on a busy machine is not a model breach.
        record.monitor_status = found.model_status
        record.breaches = [b.metric for b in found.model_breaches]
        record.serving_status = found.serving_status
        record.serving_breaches = [b.metric for b in found.serving_breaches]
        record.rmse = values.get("rmse")
        record.rmse_reference = values.get("rmse_reference")
        record.drift_share = values.get("drift_share")
        from mlplatform.adapters import registry

        record.live = window_verdicts(found)
        record.actions.extend(
            live_actions(record.live, registry.alias_events(self.use_case.model_name, self.lake))
        )
        if self.task_states("monitor", run_id).get("trigger_retrain") == "success":
            record.actions.append(f"monitoring triggered a retrain ({', '.join(record.breaches)})")
            self.follow_training(before, record, "retrain")

    def propose(self, record: MonthRecord, trial: ChallengerTrial, months: int) -> None:
        """Train ``trial`` on the ``months`` validated so far and register it as ``challenger``, as a
        data scientist proposing a version would: no promote run follows (the train DAG's
        Asset starts one), so the monitor decides it on the next month's labelled trips.

        It runs in a process of its own with the platform's settings (lake, tracking server),
        MLflow's telemetry off: its thread edits the environment while requests read it.
        """
        key = next(name for name, known in TRIALS.items() if known == trial)
        env = {**os.environ, **self.platform.env(), "MLFLOW_DISABLE_TELEMETRY": "true"}
        done = subprocess.run(
            [sys.executable, "-m", "mlplatform.dev.closed_loop", key, str(months), record.month],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            cwd=settings.REPO_ROOT,
        )
        if done.returncode != 0:
            record.actions.append(f"proposing the {trial.name} failed: {done.stderr.strip()[-300:]}")
            return
        version = done.stdout.strip().splitlines()[-1]
        record.actions.append(f"proposed version {version} for a live trial ({trial.describe()})")

    def month(self, record: MonthRecord, index: int) -> None:
        record.drift_threshold = self.use_case.monitoring.drifted_share_threshold
        self.land_and_validate(record, index)
        if record.contract.startswith("passed") and self.champion() is not None:
            self.score_and_monitor(record)
            if (trial := self.scenario.trial(index)) is not None:
                self.propose(record, trial, months=index + 1)
        record.champion_version = self.champion()
        record.actions.extend(f"alert: {text}" for text in self.new_alerts())


def propose_challenger(trial: ChallengerTrial, months: int, month: str) -> str:
    """Train ``trial`` on the newest ``months`` validated months with the training stage and
    register it as ``challenger`` (in this process's settings); returns its version."""
    from mlplatform.adapters import registry
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec
    from mlplatform.stages import training

    use_case = spec.load_spec(USE_CASE)
    if trial.sample_rows is not None:
        sampled = use_case.training.model_copy(update={"sample_rows": trial.sample_rows})
        use_case = use_case.model_copy(update={"training": sampled})
    lake = Lake()
    assembled = training.assemble_training_set(
        lake, use_case, key=f"live-trial-{month}", window_months=months
    )
    trained = training.fit_and_log(lake, use_case, assembled, reason=f"live trial: {trial.name}")
    return registry.register_challenger(use_case, trained.run_id, trained.model_uri).version


def live_actions(verdicts: list[WindowVerdict], events: list[AliasEvent]) -> list[str]:
    """What the monitor did on production truth, in the summary's words; a rollback says when
    its cooldown ends (from the alias history's ``events``)."""
    done = []
    for v in (v for v in verdicts if v.acted):
        if v.kind == "rollback":
            until = next((e.cooldown_until for e in reversed(events) if e.action == "rollback"), None)
            cooldown = f" (cooldown until {until[:16]})" if until else ""
            done.append(f"live: rolled back to version {v.version}{cooldown}")
        else:
            verb = "promoted" if v.outcome == "promote" else "retired"
            done.append(f"live: {verb} challenger version {v.version}")
    return done


def simulate(
    platform: Platform,
    scenario: Scenario,
    log: Callable[[str], None] = print,
    status: Callable[[str], None] = lambda _text: None,
) -> list[MonthRecord]:
    """Run the scenario on a running ``platform``; one record per month (``status`` hears of each)."""
    status("waiting for the DAGs to be parsed")
    loop = ClosedLoop(platform, scenario)
    loop.prepare()
    records = []
    names = scenario.month_names()
    for index, month in enumerate(names):
        status(f"month {index + 1}/{len(names)} ({month}): validate, train, promote, score, monitor")
        started = time.perf_counter()
        record = MonthRecord(month, drift_injected=scenario.drifted(index))
        loop.month(record, index)
        records.append(record)
        rmse = f"{record.rmse:.3f}" if record.rmse is not None else "-"
        log(
            f"  {month}: contract {record.contract}, champion {record.champion_version or '-'}, "
            f"rmse {rmse}, monitor {record.monitor_status or '-'} ({time.perf_counter() - started:.0f}s)"
        )
    return records


def archive_previous(platform: Platform) -> list[str]:
    """Set a previous simulation aside so this one starts clean, losing nothing: its lake
    moves to ``archive/<time>/lake`` and its registered models are renamed ``<name>.<time>``.
    Airflow's run history and MLflow's runs stay where they are."""
    from datetime import UTC, datetime

    from mlflow import MlflowClient

    from mlplatform.adapters import registry
    from mlplatform.core import spec

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    moved = []
    lake = Path(platform.home) / "lake"
    if lake.exists() and any(lake.iterdir()):
        target = Path(platform.home) / "archive" / stamp / "lake"
        target.parent.mkdir(parents=True)
        lake.rename(target)
        moved.append(f"lake → {target}")
    client = MlflowClient(platform.mlflow_url, platform.mlflow_url)
    for name in sorted({u.model_name for u in spec.load_all()}):
        if client.search_registered_models(filter_string=f"name = '{registry.lock_name(name)}'"):
            client.delete_registered_model(registry.lock_name(name))
        if client.search_registered_models(filter_string=f"name = '{name}'"):
            client.rename_registered_model(name, f"{name}.{stamp}")
            moved.append(f"registered model {name} → {name}.{stamp}")
    return moved


def run(scenario: Scenario | None = None, status: Callable[[str], None] = lambda _text: None) -> int:
    """``make run``: start (or reuse) the embedded platform and run the closed loop on it.

    ``status`` is told what is going on while nothing prints (a live status line on a terminal).
    """
    scenario = scenario or DEMO
    started = time.perf_counter()
    platform = Platform()
    print("starting the embedded platform (Airflow, MLflow, serving app, Slack sink) ...", flush=True)
    status("starting the embedded platform: database migration, then waiting for each service's health")
    platform.up()
    for line in archive_previous(platform):
        print(f"set the previous run aside: {line}", flush=True)
    if scenario.data is not None:
        months = scenario.month_names()
        print(f"replaying {len(months)} real months from {scenario.data}: {', '.join(months)}", flush=True)
    else:
        lasting = "" if scenario.drift_months is None else f" for {scenario.drift_months} month(s)"
        print(
            f"simulating {scenario.months} months of {scenario.rows:,} trips from {scenario.start}; "
            f"drift from month {scenario.drift_from}{lasting} (congestion x{scenario.congestion}, "
            f"{scenario.outer_borough_shift:.0%} of pickups to the outer boroughs)",
            flush=True,
        )
        if scenario.first_month_rows is not None:
            print(
                f"the first month is short: {scenario.month_rows(0):,} trips (started mid-month)", flush=True
            )
        for index in range(scenario.months):
            if (trial := scenario.trial(index)) is not None:
                print(f"live trial after month {index + 1}: {trial.describe()}", flush=True)
    records = simulate(platform, scenario, lambda line: print(line, flush=True), status)
    print("\n" + summary_table(records))
    summary, chart = write_outputs(records, platform.home / "closed_loop")
    print(f"\nsummary (JSON): {summary}\nchart (PNG):    {chart}\n")
    print(platform.access())
    print(f"\nclosed loop wall time: {time.perf_counter() - started:.0f} s")
    return 0


# -- the report: the month-by-month table, the summary as JSON and a chart -----------------

NO_VALUE = float("nan")
"""A month without a measurement: a gap in the chart's lines."""


def summary_table(records: list[MonthRecord]) -> str:
    lines = [
        f"{'month':<8} {'drift':<6} {'contract':<10} {'champion':>8} {'rmse':>7} {'drifted':>8}  actions"
    ]
    for r in records:
        rmse = f"{r.rmse:.3f}" if r.rmse is not None else "-"
        drift = f"{r.drift_share:.0%}" if r.drift_share is not None else "-"
        actions = [a for a in r.actions if not a.startswith("landed")]
        lines.append(
            f"{r.month:<8} {'yes' if r.drift_injected else 'no':<6} {r.contract.split(' ')[0]:<10} "
            f"{r.champion_version or '-':>8} {rmse:>7} {drift:>8}  {'; '.join(actions) or '-'}"
        )
    return "\n".join(lines + live_table(records))


def live_table(records: list[MonthRecord]) -> list[str]:
    """The live decisions on production truth, one line each: window, decision, version (the
    challenger's, or the previous champion's for a rollback), interval, labelled trips, acted."""
    verdicts = [v for r in records for v in r.live]
    if not verdicts:
        return []
    lines = [
        "",
        "live decisions on production truth (paired labelled trips, 95% confidence sequence):",
        f"{'window':<8} {'decision':<45} {'version':>7}  {'improvement [interval]':<26} {'trips':>7}  acted",
    ]
    for v in verdicts:
        shown = "-"
        if v.interval is not None and v.trips and v.interval.point == v.interval.point:
            shown = f"{v.interval.point:+.1%} [{v.interval.low:+.1%}, {v.interval.high:+.1%}]"
        lines.append(
            f"{v.window:<8} {v.words:<45} {'v' + (v.version or '-'):>7}  {shown:<26} {v.trips:>7,}  "
            f"{'yes' if v.acted else 'no'}"
        )
    return lines


def write_outputs(records: list[MonthRecord], folder: Path) -> tuple[Path, Path]:
    """The summary as JSON (one object per month) and a PNG chart of RMSE and drift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    summary = folder / "summary.json"
    summary.write_text(json.dumps([asdict(r) for r in records], indent=2) + "\n")
    chart = folder / "closed_loop.png"
    x = range(len(records))
    fig, rmse_axis = plt.subplots(figsize=(9, 4.5))
    drift_axis = rmse_axis.twinx()
    drift_axis.bar(
        x, [r.drift_share or 0 for r in records], color="tab:red", alpha=0.25, label="drifted features"
    )
    threshold = records[0].drift_threshold if records else None
    if threshold is not None:
        drift_axis.axhline(threshold, color="tab:red", lw=0.8, ls="--", label="drift threshold")
    drift_axis.set_ylim(0, 1)
    drift_axis.set_ylabel("share of drifted features")
    rmse_axis.set_zorder(drift_axis.get_zorder() + 1)
    rmse_axis.patch.set_visible(False)
    rmse = [NO_VALUE if r.rmse is None else r.rmse for r in records]
    reference = [NO_VALUE if r.rmse_reference is None else r.rmse_reference for r in records]
    rmse_axis.plot(x, rmse, marker="o", color="tab:blue", label="RMSE (min)")
    rmse_axis.plot(x, reference, ls="--", color="grey", label="RMSE at training")
    for i, r in enumerate(records):
        moves = [f"v{a.removeprefix('promoted version ')}" for a in r.actions if a.startswith("promoted")]
        moves += [a.removeprefix("live: ").split(" (")[0] for a in r.actions if a.startswith("live: ")]
        if moves:
            rmse_axis.annotate(
                "\n".join(moves), (i, r.rmse or 0), textcoords="offset points", xytext=(0, 8), fontsize=7
            )
    first_drift = next((i for i, r in enumerate(records) if r.drift_injected), None)
    if first_drift is not None:
        rmse_axis.axvline(first_drift - 0.5, color="tab:red", ls=":", label="drift injected")
    rmse_axis.set_xticks(list(x), [r.month for r in records])
    rmse_axis.set_ylabel("RMSE (minutes)")
    rmse_axis.set_title(f"{USE_CASE}: production RMSE, drift and alias moves by month")
    handles = [h for axis in (rmse_axis, drift_axis) for h in axis.get_legend_handles_labels()[0]]
    rmse_axis.legend(handles=handles, loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return summary, chart


def main(argv: list[str] | None = None) -> int:
    """``python -m mlplatform.dev.closed_loop weak|strong MONTHS MONTH``: propose a challenger
    (what :meth:`ClosedLoop.propose` runs, in the platform's settings); prints its version."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mlplatform.dev.closed_loop")
    parser.add_argument("trial", choices=sorted(TRIALS))
    parser.add_argument("months", type=int, help="validated months to train on (the newest)")
    parser.add_argument("month", help="the month after which it is proposed (names its training set)")
    args = parser.parse_args(argv)
    print(propose_challenger(TRIALS[args.trial], args.months, args.month))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
