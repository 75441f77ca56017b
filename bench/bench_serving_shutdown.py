"""Serving start and stop as processes: time to listen whatever the registry does, and the
time from SIGTERM to exit in every state, with the exit code.

Each round starts ``python -m mlplatform.serving`` afresh. Time to listen is from the spawn
to the first answer of ``/health``, with a registry where nothing listens, one that accepts
and never answers, and a fixed model; time to ready is to the first 200 of ``/ready``.
SIGTERM is sent in each state:

- ``starting``: 0.2 s after the spawn, while the app's libraries import;
- ``loading, registry never answers``: once ``/health`` answers, the loader's registry call hanging;
- ``no registry, backing off``: once ``/ready`` says ``registry_unreachable``;
- ``serving, idle``: a fixed model loaded;
- ``serving, request in flight``: headers sent, the app reading the body (``100 Continue``),
  the body sent once every server process says it is shutting down; the answer must be a 200;
- ``reloading, registry hangs``: a champion from a real MLflow server (started here), then the
  registry stops answering while the loader polls and ``POST /admin/reload`` waits on it.

Bytecode is cached in a temporary folder (``PYTHONPYCACHEPREFIX``) after one cold start, as
an image whose packages pip compiled at install; the cold start is printed too, and the
load average at the start and the end (wall times scale with it on a shared machine). So
that the start-up figure means something on a busy machine, the CPU seconds the app's
processes (the server and its workers) had used when ``/health`` first answered are
printed beside the wall time: on an idle machine the app listens in about that time (less
when its workers start in parallel). Prints JSON.
Targets: listening under 2 s in every case; exit under 5 s after SIGTERM in every state,
exit code 0, the request in flight answered.

    .venv/bin/python bench/bench_serving_shutdown.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
TRIP = {
    "pickup_datetime": "2024-03-05T08:30:00",
    "pu_location_id": 161,
    "do_location_id": 236,
    "trip_distance": 2.1,
}
TOKEN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Hold:
    """A TCP port that accepts connections and either forwards them to ``target`` or holds them
    unanswered (``forward=False``): a registry that comes, goes and hangs."""

    def __init__(self, target: int | None = None) -> None:
        self.target, self.forward = target, target is not None
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.uri = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if not self.forward or self.target is None:
                self.held.append(client)
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.held += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def hang(self) -> None:
        """Stop forwarding: cut the forwarded connections, hold new ones unanswered."""
        self.forward = False
        for sock in self.held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.held = []


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)


class App:
    """One serving process."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / f"serving-{self.port}.log").open("wb")
        self.spawned = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlplatform.serving", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def until(self, path: str, wanted: Callable[[httpx.Response], bool], limit: float = 300) -> float:
        """Seconds from the spawn until ``GET path`` answers as ``wanted``."""
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if wanted(httpx.get(f"{self.base}{path}", timeout=5)):
                    return time.perf_counter() - self.spawned
            if self.process.poll() is not None or time.perf_counter() - self.spawned > limit:
                raise RuntimeError(f"{path} never answered as wanted; see {self.log.name}")
            time.sleep(0.01)

    def cpu_seconds(self) -> float:
        """User and system CPU seconds of the app's processes so far (workers included)."""
        import psutil

        root = psutil.Process(self.process.pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def terminate(self) -> dict[str, Any]:
        """SIGTERM; seconds to exit and the exit code."""
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        self.log.close()
        return {"exit_seconds": round(time.perf_counter() - started, 3), "exit_code": code}


def in_flight_then_sigterm(app: App) -> dict[str, Any]:
    """A request whose body arrives after SIGTERM, once the app is shutting down."""
    body = json.dumps(TRIP).encode()
    with socket.create_connection(("127.0.0.1", app.port), timeout=60) as sock:
        sock.sendall(
            (
                "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        sock.recv(1024)  # 100 Continue: the app is reading the body
        started = time.perf_counter()
        app.process.send_signal(signal.SIGTERM)
        log = Path(app.log.name)
        while True:  # until every server process says it is shutting down
            text = log.read_text(errors="replace")
            if 0 < text.count("Started server process") <= text.count("Shutting down"):
                break
            time.sleep(0.005)
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    code = app.process.wait(timeout=60)
    app.log.close()
    return {
        "exit_seconds": round(time.perf_counter() - started, 3),
        "exit_code": code,
        "answer": answer.split(b"\r\n", 1)[0].decode(),
    }


def make_model() -> dict[str, Any]:
    """A small model of the reference use case, with its signature and input example: the
    arguments of ``mlflow.pyfunc.save_model`` / ``log_model``."""
    from mlplatform.core import generator, spec, tlc
    from mlplatform.core.modelling import (
        TripModel,
        build_estimator,
        input_columns,
        input_defaults,
        trip_features,
    )
    from mlplatform.stages.training import model_signature

    use_case = spec.load_spec("taxi_trip_duration")
    trips = tlc.normalise(generator.generate_month("yellow", "2024-02", 20_000, seed=5).table).to_pandas()
    estimator = build_estimator(use_case, "hist_gradient_boosting", {"max_iter": 20})
    estimator.fit(trip_features(trips)[list(use_case.features.all)], trips[use_case.target.column])
    model = TripModel(estimator, use_case.features.all, use_case.task, defaults=input_defaults(use_case))
    example = trips[input_columns(use_case.features.all)].head(5)
    signature = model_signature(use_case, model, example)
    return {"python_model": model, "signature": signature, "input_example": example, "pip_requirements": []}


@contextlib.contextmanager
def mlflow_registry(workdir: Path, model: dict[str, Any]) -> Iterator[int]:
    """A real MLflow server with the model registered and aliased ``champion``; its port."""
    port = free_port()
    home = workdir / "mlflow"
    home.mkdir()
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--artifacts-destination", str(home / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start; see {home / 'server.log'}")
            time.sleep(0.5)
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="model", registered_model_name="taxi_trip_duration", **model)
        MlflowClient().set_registered_model_alias(
            "taxi_trip_duration", "champion", str(info.registered_model_version)
        )
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-shutdown-"))
    import mlflow.pyfunc

    model, model_dir = make_model(), workdir / "model"
    mlflow.pyfunc.save_model(str(model_dir), **model)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHONDONTWRITEBYTECODE"))}
    env.update(
        PYTHONPYCACHEPREFIX=str(workdir / "pyc"),
        MLPLATFORM_USE_CASE="taxi_trip_duration",
        MLPLATFORM_LAKE_URI=(workdir / "lake").as_uri(),
        MLPLATFORM_SERVING_ADMIN_TOKEN=TOKEN,
    )
    nowhere = {**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    fixed = {**nowhere, "MLPLATFORM_MODEL_URI": str(model_dir), "MLPLATFORM_MODEL_VERSION": "1"}
    silent = Hold()
    hanging = {**env, "MLFLOW_TRACKING_URI": silent.uri}

    figures: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    cold = App(nowhere, workdir)
    figures["cold_start_listen_seconds"] = round(cold.until("/health", _ok), 3)
    cold.terminate()
    listen: dict[str, list[float]] = {"nothing listens": [], "registry never answers": [], "fixed model": []}
    listen_cpu: dict[str, list[float]] = {case: [] for case in listen}
    ready: list[float] = []
    states: dict[str, list[dict[str, Any]]] = {}

    def record(state: str, outcome: dict[str, Any]) -> None:
        states.setdefault(state, []).append(outcome)

    for _ in range(args.rounds):
        app = App(nowhere, workdir)
        time.sleep(0.2)
        record("starting", app.terminate())

        app = App(hanging, workdir)
        listen["registry never answers"].append(app.until("/health", _ok))
        listen_cpu["registry never answers"].append(app.cpu_seconds())
        record("loading, registry never answers", app.terminate())

        app = App(nowhere, workdir)
        listen["nothing listens"].append(app.until("/health", _ok))
        listen_cpu["nothing listens"].append(app.cpu_seconds())
        app.until("/ready", lambda r: r.status_code == 503 and r.json()["reason"] == "registry_unreachable")
        record("no registry, backing off", app.terminate())

        app = App(fixed, workdir)
        listen["fixed model"].append(app.until("/health", _ok))
        listen_cpu["fixed model"].append(app.cpu_seconds())
        ready.append(app.until("/ready", _ok))
        record("serving, idle", app.terminate())

        app = App(fixed, workdir)
        app.until("/ready", _ok)
        record("serving, request in flight", in_flight_then_sigterm(app))

    with mlflow_registry(workdir, model) as port:
        for _ in range(args.rounds):
            registry = Hold(port)
            app = App(
                {**env, "MLFLOW_TRACKING_URI": registry.uri, "MLPLATFORM_SERVING_POLL_SECONDS": "1"}, workdir
            )
            app.until("/ready", _ok)
            registry.hang()
            reload = threading.Thread(
                target=_quietly,
                args=(httpx.post, f"{app.base}/admin/reload"),
                kwargs={"headers": {"Authorization": f"Bearer {TOKEN}"}, "timeout": 60},
                daemon=True,
            )
            reload.start()
            while len(registry.held) < 1:
                time.sleep(0.01)
            record("reloading, registry hangs", app.terminate())

    figures["listen_seconds"] = {case: summary(values) for case, values in listen.items()}
    figures["listen_cpu_seconds"] = {case: summary(values) for case, values in listen_cpu.items()}
    figures["fixed_model_ready_seconds"] = summary(ready)
    figures["sigterm"] = {
        state: {
            **summary([o["exit_seconds"] for o in outcomes]),
            "exit_codes": sorted({o["exit_code"] for o in outcomes}),
            **({"answers": sorted({o["answer"] for o in outcomes})} if "answer" in outcomes[0] else {}),
        }
        for state, outcomes in states.items()
    }
    figures["load_average_at_end"] = os.getloadavg()
    listens = [v["max"] for v in figures["listen_seconds"].values()]
    exits = [v["max"] for v in figures["sigterm"].values()]
    figures["targets_met"] = {
        "listening_under_2s": max(listens) < 2,
        "listening_under_2_cpu_seconds": max(v["max"] for v in figures["listen_cpu_seconds"].values()) < 2,
        "exit_under_5s": max(exits) < 5,
        "exit_code_0": all(v["exit_codes"] == [0] for v in figures["sigterm"].values()),
    }
    print(json.dumps(figures, indent=2))


def _ok(response: httpx.Response) -> bool:
    return response.status_code == 200


def _quietly(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call(*args, **kwargs)


if __name__ == "__main__":
    main()
