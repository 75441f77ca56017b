"""Serving latency and throughput: the serving app against `mlflow models serve`, same model.

Both servers load the same model directory (the reference use case's model with its spec's
hyperparameters) and run as one worker process on localhost, one after the other; the
serving app as it ships (prediction log to a lake folder on), `mlflow models serve` as it
ships (`--env-manager local`). A client on the same machine sends single-trip requests
drawn from generated trips, at concurrency 1 and 16, a fixed number per level after a
warm-up. Prints p50/p99 latency and throughput per server and level. Target: higher
throughput and lower p99 than `mlflow models serve` at both levels.

    .venv/bin/python bench/bench_serving.py [--requests 400]
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

LEVELS = (1, 16)
WARMUP = 20
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample_trips(n: int) -> list[dict[str, Any]]:
    from mlplatform.core import generator, tlc

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


@contextmanager
def server(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[None]:
    """A server process (in a session of its own, so its workers stop with it)."""
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} did not become ready at {ready_url}")
            time.sleep(0.5)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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

        for body in bodies[:WARMUP]:
            await client.post(url, json=body)
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


def bench(url: str, bodies: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {f"concurrency_{c}": asyncio.run(load(url, bodies, c)) for c in LEVELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level")
    args = parser.parse_args()
    trips = sample_trips(args.requests + WARMUP)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        make_model(model)

        port = free_port()
        ours = {
            "MLPLATFORM_USE_CASE": "taxi_trip_duration",
            "MLPLATFORM_MODEL_URI": str(model),
            "MLPLATFORM_MODEL_VERSION": "1",
            "MLPLATFORM_LAKE_URI": (Path(tmp) / "lake").as_uri(),
        }
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "mlplatform.serving", "--host", "127.0.0.1", "--port", str(port)]
        with server(command, ours, f"{base}/ping"):
            results["serving_app"] = bench(f"{base}/predict", trips)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [str(BIN / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local"]
        command += ["-h", "127.0.0.1", "-p", str(port)]
        # mlflow starts uvicorn through the shell: it must find this environment's binaries.
        with server(command, {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}, f"{base}/ping"):
            wrapped = [{"dataframe_records": [trip]} for trip in trips]
            results["mlflow_models_serve"] = bench(f"{base}/invocations", wrapped)

    ours, theirs = results["serving_app"], results["mlflow_models_serve"]
    results["within_target"] = all(
        ours[level]["throughput_rps"] > theirs[level]["throughput_rps"]
        and ours[level]["p99_ms"] < theirs[level]["p99_ms"]
        for level in ours
    )
    results["target"] = "serving_app: higher throughput and lower p99 than mlflow_models_serve at each level"
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
