"""The closed loop's report: the month-by-month table, the summary as JSON and a chart.

:func:`mlplatform.dev.closed_loop.run` prints :func:`summary_table` and writes
:func:`write_outputs` at the end of a simulation.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplatform.dev.closed_loop import MonthRecord

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
    return "\n".join(lines)


def write_outputs(records: list[MonthRecord], folder: Path) -> tuple[Path, Path]:
    """The summary as JSON (one object per month) and a PNG chart of RMSE and drift."""
    import matplotlib

    from mlplatform.dev.closed_loop import USE_CASE

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
        if any(a.startswith("promoted") for a in r.actions):
            rmse_axis.annotate(
                f"v{r.champion_version}", (i, r.rmse or 0), textcoords="offset points", xytext=(0, 8)
            )
    first_drift = next((i for i, r in enumerate(records) if r.drift_injected), None)
    if first_drift is not None:
        rmse_axis.axvline(first_drift - 0.5, color="tab:red", ls=":", label="drift injected")
    rmse_axis.set_xticks(list(x), [r.month for r in records])
    rmse_axis.set_ylabel("RMSE (minutes)")
    rmse_axis.set_title(f"{USE_CASE}: production RMSE and drift by month")
    handles = [h for axis in (rmse_axis, drift_axis) for h in axis.get_legend_handles_labels()[0]]
    rmse_axis.legend(handles=handles, loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return summary, chart
