"""The platform keeps its head when a neighbour fails in the middle of a run.

Each fault happens on the real service: an MLflow server of the module's own that is stopped
mid-promotion or mid-monitoring and started again on the same port and database, a Slack
webhook (the local sink) stopped and started again, and a lake whose disk fills during a
write (a tiny tmpfs when the test may mount one, else a file system whose writes fail with
ENOSPC). After each fault the registry, the lake and the alerts are checked: no alias
without its audit trail, no half-written record, no alert lost or sent twice.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlplatform.adapters import alerts, registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, tlc
from mlplatform.core.records import Assessment, Gate, MonitoringRecord
from mlplatform.core.spec import load_spec
from mlplatform.dev.webhook_sink import WebhookSink
from mlplatform.stages import monitoring, promotion
from mlplatform.stages.promotion import decisions

from conftest import MlflowServer

pytestmark = pytest.mark.slow

USE_CASE = load_spec("taxi_trip_duration")
GATES = (Gate("improvement", True, "better than the champion"),)


@pytest.fixture(scope="module")
def _module_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-own"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mlflow_own(_module_mlflow: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """An MLflow server of this module's own, which each test may stop and start again (it is
    running when a test starts; each test uses model names of its own); the client gives up
    fast when it is down (no long retries)."""
    if not _module_mlflow.running:
        _module_mlflow.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _module_mlflow.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    return _module_mlflow


@pytest.fixture
def slack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A Slack webhook (the local sink) that can be stopped and started again on its port."""
    store = tmp_path / "slack" / "messages.jsonl"
    state = SimpleNamespace(sink=WebhookSink(store=store).start())
    state.port = int(state.sink.url.rsplit(":", 1)[1])
    state.url = state.sink.url
    monkeypatch.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    monkeypatch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", state.sink.hook_url)

    def stop() -> None:
        if state.sink is not None:
            state.sink.stop()
            state.sink = None

    def start() -> None:
        state.sink = WebhookSink(port=state.port, store=store).start()

    def texts() -> list[str]:
        with urllib.request.urlopen(f"{state.url}/messages", timeout=10) as response:
            return [m["text"] for m in json.load(response)]

    state.stop, state.start, state.texts = stop, start, texts
    try:
        yield state
    finally:
        stop()


@pytest.fixture
def own_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lake:
    lake = Lake((tmp_path / "lake").as_uri())
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    return lake


# -- MLflow goes away during a promotion ---------------------------------------------------------
def _versions(count: int) -> tuple[str, list[str]]:
    name = f"neighbours_{uuid.uuid4().hex[:8]}"
    client = registry.client()
    client.create_registered_model(name)
    return name, [str(client.create_model_version(name, f"s3://m/{name}/{i}").version) for i in range(count)]


def _promote(name: str, version: str, champion: str | None, run_id: str) -> promotion.PromotionOutcome:
    assessment = Assessment(name, version, None, champion, "rmse", 4, gates=GATES, rows=1, candidate={})
    decision = promotion.decide(USE_CASE.model_copy(update={"maturity_level": 4}), assessment)
    return promotion.apply(USE_CASE, assessment, decision, run_id=run_id)


def _stop_before(server: MlflowServer, target: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow stops the first time ``target.name`` is called (the call then fails), once."""
    original = getattr(target, name)
    fired: list[bool] = []

    def dying(*args: Any, **kwargs: Any) -> Any:
        if not fired:
            fired.append(True)
            server.stop()
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, dying)


def test_mlflow_stopping_between_the_alias_move_and_the_audit_trail(
    mlflow_own: MlflowServer, own_lake: Lake, slack: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The champion alias moved, then MLflow went away before the decision's audit tags: the
    task fails; its retry, once MLflow is back, leaves the champion with its audit trail."""
    from mlflow.exceptions import MlflowException

    name, (old, new) = _versions(2)
    registry.promote(name, old, {"run_id": "setup"})
    _stop_before(mlflow_own, decisions, "decision_tags", monkeypatch)  # right after the alias moved

    with pytest.raises(MlflowException):
        _promote(name, new, old, "promote-run-1")

    mlflow_own.start()  # back on the same port and database
    client = registry.client()
    assert registry.alias_version(client, name, "champion") == new  # moved before the fault
    assert "decision" not in client.get_model_version(name, new).tags
    assert not client.search_registered_models(filter_string=f"name = '{registry.lock_name(name)}'")

    retried = _promote(name, new, old, "promote-run-1")  # the task's retry

    assert retried.outcome == "already_champion" and retried.champion == new
    audit = client.get_model_version(name, new).tags
    assert audit["decision"] == "promoted" and audit["decision.run_id"] == "promote-run-1"
    assert json.loads(audit["decision.gates"]) == [g.to_dict() for g in GATES]
    assert registry.alias_version(client, name, "previous_champion") == old
    assert "decision" not in client.get_model_version(name, old).tags
    assert client.get_registered_model(name).tags["champion_history"].split(",") == [old, new]


def test_mlflow_stopping_before_the_alias_moves_changes_nothing(
    mlflow_own: MlflowServer, own_lake: Lake, slack: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow goes away while the promotion holds its lock, before any alias moved: the
    registry is as it was; the retry promotes once the lock is released or goes stale."""
    from mlflow.exceptions import MlflowException

    name, (old, new) = _versions(2)
    registry.promote(name, old, {"run_id": "setup"})
    client = registry.client()
    _stop_before(mlflow_own, client.__class__, "set_registered_model_alias", monkeypatch)

    with pytest.raises(MlflowException):
        _promote(name, new, old, "promote-run-2")

    mlflow_own.start()
    assert registry.alias_version(client, name, "champion") == old
    assert "decision" not in client.get_model_version(name, new).tags
    # The dead attempt's lock is still there: a retry waits for it to go stale. Here it is
    # released as an operator would (the error names the lock to delete).
    lock = registry.lock_name(name)
    assert client.search_registered_models(filter_string=f"name = '{lock}'")
    client.delete_registered_model(lock)

    retried = _promote(name, new, old, "promote-run-2")

    assert retried.outcome == "promoted" and registry.alias_version(client, name, "champion") == new
    assert client.get_model_version(name, new).tags["decision"] == "promoted"


# -- MLflow goes away while training registers its model -----------------------------------------
def _trained_run(name: str, tracking_uri: str) -> tuple[Any, str, str]:
    """A training run holding a model (its MLmodel file is all registration reads)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_text("flavors: {}\n", "model/MLmodel")
    return USE_CASE.model_copy(update={"name": name}), run.info.run_id, f"runs:/{run.info.run_id}/model"


@pytest.mark.parametrize(
    "fault",
    ["set_registered_model_alias", "set_registered_model_tag"],
    ids=["before the challenger alias", "after the alias, before its history tag"],
)
def test_mlflow_stopping_mid_registration_is_finished_by_the_retry_with_one_version(
    fault: str, mlflow_own: MlflowServer, own_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow stops after the version was registered, before its registration was whole: the
    version is marked incomplete; the task's retry finishes that version (alias, history,
    mark) instead of registering a second one, and a further retry changes nothing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = f"neighbours_{uuid.uuid4().hex[:8]}"
    use_case, run_id, model_uri = _trained_run(name, mlflow_own.url)
    _stop_before(mlflow_own, MlflowClient, fault, monkeypatch)

    with pytest.raises(MlflowException):
        registry.register_challenger(use_case, run_id, model_uri)

    mlflow_own.start()  # back on the same port and database
    client = registry.client()
    (half,) = client.search_model_versions(f"name = '{name}'")
    assert half.tags[registry.REGISTRATION_TAG] == registry.INCOMPLETE
    assert half.tags["training_run_id"] == run_id

    retried = registry.register_challenger(use_case, run_id, model_uri)  # the task's retry

    (whole,) = client.search_model_versions(f"name = '{name}'")
    assert (retried.name, retried.version, retried.run_id) == (name, str(half.version), run_id)
    assert whole.tags[registry.REGISTRATION_TAG] == "complete"
    assert registry.alias_version(client, name, "challenger") == str(half.version)
    moved = [e for e in registry.alias_events(name, own_lake) if e.alias == "challenger"]
    assert [e.version for e in moved][-1] == str(half.version) and moved[-1].run_id == run_id
    last = json.loads(client.get_registered_model(name).tags[registry.LAST_EVENTS_TAG])
    assert last[-1]["version"] == str(half.version) and last[-1]["alias"] == "challenger"

    assert registry.register_challenger(use_case, run_id, model_uri) == retried
    assert len(client.search_model_versions(f"name = '{name}'")) == 1
    assert len(registry.alias_events(name, own_lake)) == len(moved)


# -- a promotion dies while it holds the lock ----------------------------------------------------
HOLD_THE_LOCK = """
import sys, time
from mlplatform.adapters import registry
with registry.promotion_lock(registry.client(), sys.argv[1], "a promotion about to die"):
    print("held", flush=True)
    time.sleep(3600)
"""


def test_a_lock_whose_holder_died_is_taken_over_at_once(mlflow_own: MlflowServer) -> None:
    """A promotion killed while holding the lock: the lock names its holder (host, pid, the
    process's start time); while that process lives the lock holds, once it is gone the next
    promotion takes the lock over at once instead of waiting the ten minutes of staleness."""
    import signal

    name = f"neighbours_{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, name], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        client = registry.client()
        lock = client.get_registered_model(registry.lock_name(name)).tags
        assert lock["pid"] == str(holder.pid) and lock["host"] and lock["process_started"]

        with (
            pytest.raises(registry.PromotionError, match=rf"pid {holder.pid} on "),
            registry.promotion_lock(client, name, "impatient", wait_s=1.0),
        ):
            pass  # a living holder keeps its lock

        os.killpg(holder.pid, signal.SIGKILL)  # the promotion dies holding the lock
        holder.wait()
        assert client.search_registered_models(filter_string=f"name = '{registry.lock_name(name)}'")

        # Ten minutes before staleness, two minutes to wait: only the dead holder lets it through.
        with registry.promotion_lock(client, name, "the retry", wait_s=120.0, stale_after_s=600.0):
            taken = client.get_registered_model(registry.lock_name(name)).tags
            assert taken["holder"] == "the retry" and taken["pid"] == str(os.getpid())
        assert not client.search_registered_models(filter_string=f"name = '{registry.lock_name(name)}'")

        # Another host's holder cannot be checked from here: its lock waits for staleness.
        client.create_registered_model(
            registry.lock_name(name), tags={"holder": "elsewhere", "host": "another-host", "pid": "1"}
        )
        with (
            pytest.raises(registry.PromotionError, match="elsewhere"),
            registry.promotion_lock(client, name, "impatient", wait_s=1.0),
        ):
            pass
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()


# -- MLflow goes away during monitoring ----------------------------------------------------------
def _validated_month(lake: Lake, month: str) -> None:
    made = generator.generate_month("yellow", month, 2_000, seed=3)
    contract = {"success": True, "bad_row_share": 0.0, "suite": USE_CASE.contract.suite}
    snapshots.write_snapshot(lake, USE_CASE.name, month, tlc.normalise(made.table), {"contract": contract})


def _window_runs(client: Any, window: str) -> list[Any]:
    experiment = client.get_experiment_by_name(f"{USE_CASE.name}-monitoring")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`mlplatform.window` = '{window}'")


def test_mlflow_stopping_during_monitoring_leaves_no_half_record(
    mlflow_own: MlflowServer, own_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow stops after the window's run was created, before its metrics were logged: the
    window has no record (nothing half-written); the re-run reuses the run and records it."""
    from mlflow import MlflowClient

    _validated_month(own_lake, "2024-04")
    _stop_before(mlflow_own, MlflowClient, "log_batch", monkeypatch)

    with pytest.raises(Exception, match=r"(?i)connection|refused|max retries|failed"):
        monitoring.monitor(own_lake, USE_CASE, "2024-04", MlflowClient(mlflow_own.url))

    assert monitoring.read_record(own_lake, USE_CASE.name, "2024-04") is None
    assert not own_lake.exists(f"monitoring/{USE_CASE.name}/history.parquet")

    mlflow_own.start()
    client = MlflowClient(mlflow_own.url)
    assert len(_window_runs(client, "2024-04")) == 1  # created before the fault

    record = monitoring.monitor(own_lake, USE_CASE, "2024-04", client)

    assert record.model_status == "pending" and record.mlflow_run_id
    [run] = _window_runs(client, "2024-04")  # reused, not a second run
    assert run.info.run_id == record.mlflow_run_id and run.data.tags["mlplatform.model_status"] == "pending"
    stored = monitoring.read_record(own_lake, USE_CASE.name, "2024-04")
    assert stored is not None and stored.mlflow_run_id == record.mlflow_run_id


# -- two neighbours at once ----------------------------------------------------------------------
def _failure_context(run_id: str, error: BaseException) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id=f"{USE_CASE.name}_promote",
        task_id="decide",
        run_id=run_id,
        try_number=3,
        max_tries=2,
        log_url=f"http://airflow.example/dags/{USE_CASE.name}_promote/runs/{run_id}",
    )
    return {"ti": ti, "run_id": run_id, "exception": error}


def test_mlflow_and_slack_down_together_end_consistent_once_both_return(
    mlflow_own: MlflowServer, own_lake: Lake, slack: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack is down; MLflow goes away mid-promotion. The failure alert waits in the outbox.
    Both come back: the retry completes the promotion with its audit trail, and the queued
    failure alert is delivered once."""
    from mlflow.exceptions import MlflowException

    from mlplatform.airflow.dagkit import FailureNotifier

    name, (old, new) = _versions(2)
    registry.promote(name, old, {"run_id": "setup"})
    slack.stop()
    _stop_before(mlflow_own, decisions, "decision_tags", monkeypatch)

    with pytest.raises(MlflowException) as failed:
        _promote(name, new, old, "promote-run-3")
    FailureNotifier(USE_CASE.name, "promote")(_failure_context("promote-run-3", failed.value))

    [queued] = alerts.queued(own_lake)
    assert "task decide failed" in queued.alert.title and queued.attempts == 1

    mlflow_own.start()
    slack.start()
    retried = _promote(name, new, old, "promote-run-3")
    assert alerts.flush(own_lake).queued == []

    client = registry.client()
    assert retried.champion == new and registry.alias_version(client, name, "champion") == new
    assert client.get_model_version(name, new).tags["decision"] == "promoted"
    texts = slack.texts()
    assert len([t for t in texts if "task decide failed" in t]) == 1
    assert len(texts) == len(set(texts))  # nothing twice
    assert alerts.queued(own_lake) == [] and alerts.queued(own_lake, "failed") == []


# -- the lake's disk fills during a write --------------------------------------------------------
class _FullDisk:
    """A file handle that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, handle: Any, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data: Any) -> int:
        if len(data) > self.room:
            self.handle.write(bytes(data[: self.room]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return int(self.handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.close()


def _record(window: str) -> MonitoringRecord:
    big = {f"feature_{i}": float(i) for i in range(2_000)}  # a record of some size
    return MonitoringRecord(USE_CASE.name, window, "ok", {"rmse": 3.3}, details={"features": big})


def test_a_full_disk_mid_write_is_a_clear_error_and_leaves_nothing_partial(
    own_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitoring.write_history(own_lake, _record("2024-03"))
    before = own_lake.read_bytes(monitoring.record_path(USE_CASE.name, "2024-03"))
    listed = [e.path for e in own_lake.list()]
    original = own_lake.fs.open

    def full_disk(path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        handle = original(path, mode, *args, **kwargs)
        return _FullDisk(handle, room=4096) if "w" in mode else handle

    monkeypatch.setattr(own_lake.fs, "open", full_disk)
    with pytest.raises(OSError, match=r"the lake is full: .*metrics\.json was not written") as raised:
        monitoring.write_history(own_lake, _record("2024-03"))  # overwriting the window's record
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()

    assert own_lake.read_bytes(monitoring.record_path(USE_CASE.name, "2024-03")) == before  # old one intact
    assert [e.path for e in own_lake.list()] == listed  # nothing new is visible
    root = Path(own_lake.root_uri.removeprefix("file://"))
    assert not [p for p in root.rglob(".*") if p.is_file()]  # the temporary was removed too


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, timeout=30
    )
    return done.returncode == 0


def test_a_real_tiny_tmpfs_filling_up(tmp_path: Path) -> None:
    """The same on a real 256 KiB tmpfs, where the test may mount one (root in a container
    that allows mounts)."""
    where = tmp_path / "tiny"
    if not _mount_tmpfs(where, "256k"):
        pytest.skip("mounting a tmpfs needs root and a system that allows mounts (CAP_SYS_ADMIN)")
    try:
        lake = Lake(where.as_uri())
        lake.write_json("monitoring/x/small.json", {"ok": True})
        with pytest.raises(OSError) as raised:
            lake.write_bytes("monitoring/x/big.bin", b"x" * (1 << 20))
        assert raised.value.errno in (errno.ENOSPC, errno.EDQUOT)
        assert [e.path for e in lake.list()] == ["monitoring/x/small.json"]
        assert not [p for p in where.rglob(".*") if p.is_file()]
    finally:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=30)
