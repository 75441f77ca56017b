"""English for a failed contract: what broke, and what to do about it.

The sentences end up in the outcome, the breach record, the Slack alert and the
``mlplatform validate`` summary, so each names the thing that is wrong (a file, a column,
a count) and, where there is one, the command that fixes it.
"""

from __future__ import annotations

from typing import Any

from mlplatform.core.spec import UseCase
from mlplatform.stages.contracts.checkpoint import Evaluation
from mlplatform.stages.contracts.profile import NONE


def explain(ev: Evaluation, use_case: UseCase, profile: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Human sentences for the failed checks: what broke and what to do about it."""
    failed = {c.check for c in ev.checks if not c.success}
    breaches: list[str] = []
    unreadable = profile["file_problem"] != NONE
    if "file_problem" in failed:
        breaches.append(f"unreadable file: {profile['file_problem']}; re-deliver the month as TLC parquet")
    if "taxi_type" in failed:
        breaches.append(
            f"wrong taxi type: the file holds {profile['unlisted_taxi_type']}; land each taxi type's "
            f"file under its own name (mlplatform ingest FILE --use-case {use_case.name} --month {ev.month})"
        )
    if "missing_columns" in failed:
        renamed = (
            f" (unexpected columns: {profile['unexpected_columns']})"
            if profile["unexpected_columns"] != NONE
            else ""
        )
        breaches.append(f"schema broken: required column(s) missing: {profile['missing_columns']}{renamed}")
    if "mistyped_columns" in failed:
        breaches.append(f"schema broken: column type(s) TLC never used: {profile['mistyped_columns']}")
    if "all_null_columns" in failed:
        breaches.append(f"key column(s) entirely empty: {profile['all_null_columns']}")
    if "money_units" in failed:
        breaches.append(str(profile["money_units"]))
    if "row_count" in failed and not unreadable:
        breaches.append("the file has no rows")
    elif "volume" in failed and not unreadable:
        v = ev.volume
        breaches.append(
            f"volume far off history: {ev.rows:,} rows, allowed {v['min_rows']:,}..{v['max_rows']:,} "
            f"({use_case.contract.volume_band[0]}x..{use_case.contract.volume_band[1]}x the median "
            f"{v['median_rows']:,.0f} of the previous {v['history_months']} months)"
        )
    if "bad_row_share" in failed:
        top = sorted(((n, k) for k, n in ev.rule_counts.items() if n), reverse=True)[:3]
        breaches.append(
            f"too many bad rows: {ev.bad_rows:,} of {ev.rows:,} ({ev.bad_row_share:.1%}) break row rules, "
            f"above the {use_case.contract.max_bad_row_share:.1%} allowed; most: "
            + ", ".join(f"{k} {n:,} ({n / ev.rows:.1%})" for n, k in top)
        )
    if mismatch := month_mismatch(ev):
        (breaches if "bad_row_share" in failed else []).append(mismatch)
    for c in ev.checks:  # an expectation that could not be evaluated is a breach too
        if isinstance(c.observed, str) and c.observed.startswith("error:") and c.severity == "breach":
            breaches.append(f"contract check {c.check} could not run: {c.observed}")
    warnings = []
    if mismatch and "bad_row_share" not in failed:
        warnings.append(mismatch)
    if "misnamed_files" in failed:
        warnings.append(f"file named as the other taxi type: {profile['misnamed_files']}")
    if "empty_surcharge_columns" in failed:
        warnings.append(f"surcharge column empty: {profile['empty_surcharge_columns']}")
    if "unexpected_columns" in failed:
        warnings.append(f"unexpected column(s) dropped: {profile['unexpected_columns']}")
    return breaches, warnings


def month_mismatch(ev: Evaluation) -> str | None:
    """A sentence when most pickups fall in another month than the one validated; else ``None``.

    Real months have a few pickups outside (trips begun the evening before); a month whose
    pickups are mostly elsewhere was named or landed under the wrong month.
    """
    if not ev.outside_pickup_months:
        return None
    other, n = next(iter(ev.outside_pickup_months.items()))
    inside = ev.rows - ev.rule_counts.get("pickup_outside_month", 0)
    if n <= inside:
        return None
    return (
        f"month mismatch: the data's pickups are in {other} ({n:,} of {ev.rows:,} rows), not in "
        f"{ev.month}, the month it was named or landed as; check the file name "
        "(<type>_tripdata_YYYY-MM.parquet), --month, or the month it was ingested under"
    )
