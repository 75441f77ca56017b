"""The embedded default: the whole platform on one machine, no cloud and no Docker.

``make run`` calls :func:`run`: it lands months of TLC-format data for every use case in
the local lake (``.local/lake``) and prints what the lake holds. Processes it starts are
recorded as pid files in ``.local/run`` so that ``make stop`` (:func:`stop`) ends exactly
those.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from mlplatform import ingest, settings, spec
from mlplatform.lake import Lake, inventory

RUN_DIR = settings.LOCAL_HOME / "run"


def run(months: int = 4, rows: int = 50_000, start: str = "2024-01") -> int:
    """Land ``months`` months from ``start`` for every use case, then show the lake."""
    from mlplatform.cli import _months

    lake = Lake()
    print(f"lake: {lake.root_uri}")
    datasets = {(u.data.dataset, u.data.taxi_type) for u in spec.load_all()}
    for dataset, taxi_type in sorted(datasets):
        for i, month in enumerate(_months(start, months)):
            landed, made = ingest.land_generated(lake, dataset, taxi_type, month, rows, seed=i)
            state = "landed" if landed.changed else "present"
            print(
                f"  {state:<8} {landed.path}  {made.table.num_rows:,} rows  "
                f"noise floor RMSE {made.noise_floor_rmse:.3f} min"
            )
    print()
    for zone, entries in inventory(lake).items():
        print(f"  {zone:<12} {len(entries):>4} objects  {sum(e.size for e in entries) / 1e6:8.1f} MB")
    return 0


def stop() -> int:
    """Stop every process recorded in ``.local/run/*.pid``."""
    stopped = 0
    for pid_file in sorted(Path(RUN_DIR).glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
            os.killpg(pid, signal.SIGTERM)
            stopped += 1
            print(f"stopped {pid_file.stem} (pid {pid})")
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        pid_file.unlink(missing_ok=True)
    if not stopped:
        print("nothing to stop")
    return 0
