"""Serving latency and throughput: the serving app against its limit and `mlflow models serve`.

The model is the reference use case's default family with the spec's hyperparameters,
fitted on a real TLC month (`tests/fixtures/real_tlc/`, else a generated one), as a
dispatch system would call it: one trip per request. Measured, in this order and in one run:

- the limit: the bare in-process predict of one trip with the lean path
  (`mlplatform.serving.lean`), beside the logged model's own `predict` of the same row;
- the serving app as it ships (prediction log to a lake folder on) with one worker, and
  with its default workers (one per core the process may use);
- `mlflow models serve` (`--env-manager local`, one worker) on the same model directory.

Each server runs alone on localhost; a client on the same machine sends single-trip
requests at concurrency 1, 16 and 64, a fixed number per level after a warm-up. Prints
p50/p99 latency and throughput per server and level, the ratios against `mlflow models
serve`, the CPU time per request of the server and of the client (what a request costs
whatever else runs), the resident memory of each worker, and the machine's load (`os.getloadavg`)
before and after: the client shares the cores with the servers, and other work may too.
Targets (2 cores): p50 at most 5 ms at concurrency 1; at least 800 requests/s at
concurrency 16 with p99 at most 50 ms.

    .venv/bin/python bench/bench_serving.py [--requests 800] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from bench_score import make_model

MAX_ITER = 500  # the spec's; early stopping ends a real month's model after a few hundred rounds

LEVELS = (1, 16, 64)
REAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_tlc"
WARMUP = 20
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample_trips(n: int) -> list[dict[str, Any]]:
    """``n`` single-trip request bodies: real trips of a later month, else generated ones."""
    from mlplatform.core import generator, tlc

    if (REAL / "green_tripdata_2021-02.parquet").is_file():
        import pyarrow.parquet as pq

        table = tlc.normalise(pq.read_table(REAL / "green_tripdata_2021-02.parquet"), "green")
        frame = table.to_pandas().dropna(subset=["pu_location_id", "do_location_id", "trip_distance"])
        frame = frame[frame["trip_distance"].between(0, 200)].sample(
            n, random_state=7, replace=len(frame) < n
        )
    else:
        frame = tlc.normalise(generator.generate_month("yellow", "2024-04", n, seed=7).table).to_pandas()
    return [
        {
            "pickup_datetime": row.pickup_datetime.isoformat(),
            "pu_location_id": int(row.pu_location_id),
            "do_location_id": int(row.do_location_id),
            "trip_distance": float(row.trip_distance),
        }
        for row in frame.itertuples()
    ]


def make_real_model(path: Path) -> str:
    """The reference use case's default family with the spec's hyperparameters, fitted on a
    real TLC month as `mlplatform train` fits it; a generated month without the fixtures."""
    if not (REAL / "green_tripdata_2021-01.parquet").is_file():
        make_model(path)
        return "generated month (bench_score.make_model)"
    import mlflow.pyfunc
    import pyarrow.parquet as pq

    from mlplatform.core import spec, tlc
    from mlplatform.core.modelling import (
        build_estimator,
        in_target_range,
        input_columns,
        target_values,
        trip_features,
    )
    from mlplatform.stages.training import model_signature
    from mlplatform.stages.training.fitting import trip_model

    use_case = spec.load_spec("taxi_trip_duration")
    trips = tlc.normalise(pq.read_table(REAL / "green_tripdata_2021-01.parquet"), "green").to_pandas()
    y = target_values(trips, use_case.target.column, use_case.target.expression)
    keep = in_target_range(y, use_case.target.range_).to_numpy()
    trips, y = trips[keep], y[keep]
    estimator = build_estimator(use_case, use_case.model.family, use_case.model.hyperparameters)
    estimator.fit(trip_features(trips)[list(use_case.features.all)], y)
    model = trip_model(use_case, estimator)
    example = trips[input_columns(use_case.features.all)].head(20)
    signature = model_signature(use_case, model, example)
    mlflow.pyfunc.save_model(str(path), python_model=model, signature=signature, input_example=example)
    rounds = estimator[-1].n_iter_
    return f"green 2021-01 ({len(trips):,} trips in range), {use_case.model.family}, {rounds} rounds"


def bare_predict(model_dir: Path, trip: dict[str, Any], repeats: int = 2000) -> dict[str, Any]:
    """The limit: one trip predicted in-process by the lean path, beside the logged model's predict."""
    from threadpoolctl import threadpool_limits

    from mlplatform.core import spec
    from mlplatform.serving import lean
    from mlplatform.serving.schema import Validator, frame_of, model_fields
    from mlplatform.stages import scoring

    threadpool_limits(1)  # as the app's predict thread
    model = scoring.load_model(str(model_dir))
    fields = model_fields(model, spec.load_spec("taxi_trip_duration"))
    predict = scoring.predictor(model)
    fast, status = lean.verified(model, fields, predict, scoring.model_task(model))
    if fast is None:
        return {"lean": status}
    columns = Validator(fields).columns([trip], None)

    def timed(work: Any, n: int) -> float:
        for _ in range(min(n, 50)):
            work()
        took = []
        for _ in range(n):
            started = time.perf_counter()
            work()
            took.append(time.perf_counter() - started)
        return round(float(np.median(took)) * 1000, 3)

    lean_ms = timed(lambda: fast.answers(columns), repeats)
    logged_ms = timed(lambda: predict(frame_of(columns, fields)), max(repeats // 20, 50))
    return {"lean": status, "lean_p50_ms": lean_ms, "logged_model_p50_ms": logged_ms}


@contextmanager
def server(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[subprocess.Popen]:
    """A server process (in a session of its own, so its workers stop with it), once every
    worker answers: ``ready_url`` 200 on 20 connections in a row."""
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import httpx

        deadline, in_a_row = time.monotonic() + 600, 0
        while in_a_row < 20:
            try:  # a new connection each time: the kernel spreads them over the workers
                in_a_row = in_a_row + 1 if httpx.get(ready_url, timeout=2).status_code == 200 else 0
            except httpx.HTTPError:
                in_a_row = 0
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} did not become ready at {ready_url}")
            time.sleep(0.1 if in_a_row else 0.5)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def worker_memory(process: subprocess.Popen) -> dict[str, Any]:
    """Resident memory of the server's processes that hold a model (MB), and of the supervisor."""
    import psutil

    parent = psutil.Process(process.pid)
    children = [c for c in parent.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
    mb = lambda p: round(p.memory_info().rss / 2**20)  # noqa: E731
    if not children:
        return {"workers": 1, "rss_mb_per_worker": [mb(parent)]}
    return {
        "workers": len(children),
        "rss_mb_per_worker": [mb(c) for c in children],
        "supervisor_rss_mb": mb(parent),
    }


async def load(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, float]:
    """Warm up, then send the other bodies once, ``concurrency`` at a time: latency and throughput."""
    import httpx

    latencies: list[float] = []
    failures = 0
    queue = iter(bodies[WARMUP:])
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal failures
            for body in queue:
                started = time.perf_counter()
                response = await client.post(url, json=body)
                latencies.append(time.perf_counter() - started)
                failures += response.status_code != 200

        await asyncio.gather(*(client.post(url, json=body) for body in bodies[:WARMUP]))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "failures": failures,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "throughput_rps": round(len(latencies) / wall, 1),
    }


def cpu_seconds(process: subprocess.Popen) -> float:
    """CPU time (user and system) of a server process and its workers so far."""
    import psutil

    parent = psutil.Process(process.pid)
    total = 0.0
    for each in [parent, *parent.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def bench(url: str, bodies: list[dict[str, Any]], process: subprocess.Popen) -> dict[str, dict[str, float]]:
    """Each level's figures, with the CPU time per request of the server and of this client:
    what a request costs whatever else runs on the machine."""
    results = {}
    for c in LEVELS:
        server_before, client_before = cpu_seconds(process), time.process_time()
        figures = asyncio.run(load(url, bodies, c))
        sent = len(bodies)  # the warm-up too
        figures["server_cpu_ms_per_request"] = round((cpu_seconds(process) - server_before) / sent * 1000, 3)
        figures["client_cpu_ms_per_request"] = round((time.process_time() - client_before) / sent * 1000, 3)
        results[f"concurrency_{c}"] = figures
    return results


def serving_app(model: Path, lake: Path, trips: list[dict[str, Any]], workers: str | None) -> dict[str, Any]:
    port = free_port()
    env = {
        "MLPLATFORM_USE_CASE": "taxi_trip_duration",
        "MLPLATFORM_MODEL_URI": str(model),
        "MLPLATFORM_MODEL_VERSION": "1",
        "MLPLATFORM_LAKE_URI": lake.as_uri(),
    }
    if workers is not None:
        env["MLPLATFORM_SERVING_WORKERS"] = workers
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlplatform.serving", "--host", "127.0.0.1", "--port", str(port)]
    with server(command, env, f"{base}/ping") as process:
        import httpx

        fast_path = httpx.get(f"{base}/health", timeout=5).json()["champion"].get("fast_path")
        results = bench(f"{base}/predict", trips, process)
        return {**results, "memory": worker_memory(process), "fast_path": fast_path}


def mlflow_models_serve(model: Path, trips: list[dict[str, Any]]) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(BIN / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    # mlflow starts uvicorn through the shell: it must find this environment's binaries.
    with server(command, {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}, f"{base}/ping") as process:
        wrapped = [{"dataframe_records": [trip]} for trip in trips]
        return {**bench(f"{base}/invocations", wrapped, process), "memory": worker_memory(process)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800, help="requests per concurrency level")
    parser.add_argument(
        "--workers", default=None, help="the app's workers beside one (default: its own, auto)"
    )
    args = parser.parse_args()
    trips = sample_trips(args.requests + WARMUP)
    results: dict[str, Any] = {
        "load_before": [round(x, 1) for x in os.getloadavg()],
        "cores": len(os.sched_getaffinity(0)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        results["model"] = make_real_model(model)
        results["limit"] = bare_predict(model, trips[0])
        results["serving_app_1_worker"] = serving_app(model, Path(tmp) / "lake1", trips, "1")
        results["serving_app"] = serving_app(model, Path(tmp) / "lake", trips, args.workers)
        results["mlflow_models_serve"] = mlflow_models_serve(model, trips)
    results["load_after"] = [round(x, 1) for x in os.getloadavg()]

    theirs = results["mlflow_models_serve"]
    for name in ("serving_app_1_worker", "serving_app"):
        ours = results[name]
        results[f"{name}_vs_mlflow"] = {
            level: {
                "throughput_x": round(ours[level]["throughput_rps"] / theirs[level]["throughput_rps"], 1),
                "p50_x": round(theirs[level]["p50_ms"] / ours[level]["p50_ms"], 1),
                "p99_x": round(theirs[level]["p99_ms"] / ours[level]["p99_ms"], 1),
            }
            for level in (f"concurrency_{c}" for c in LEVELS)
        }
    ours = results["serving_app"]
    results["within_target"] = {
        "p50_at_most_5ms_at_1": ours["concurrency_1"]["p50_ms"] <= 5,
        "800_rps_at_16": ours["concurrency_16"]["throughput_rps"] >= 800,
        "p99_at_most_50ms_at_16": ours["concurrency_16"]["p99_ms"] <= 50,
    }
    results["target"] = "serving_app: p50 <= 5 ms at 1; >= 800 requests/s at 16 with p99 <= 50 ms (2 cores)"
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
