"""The contract in Great Expectations: the file data context, the month's contract profile, the
suite built from the spec, and the checkpoint run.

- The context lives in ``great_expectations/`` (:func:`gx_root`); the names of its
  datasource, batch definition, Data Docs site, validation definitions and checkpoints have
  their home here.
- The month's *contract profile* (:class:`ContractProfile`) is the one row the checkpoint
  validates: what reading the month's files found (unreadable files, unlisted taxi types,
  missing, mistyped, unexpected or entirely empty columns; :data:`NONE` where there is no
  problem), the row count, the share of bad rows and how many rows break each row rule. A
  problem names its file when the month has several.
- :func:`build_suite` turns a use case's ``contract`` into expectations over that profile,
  each with its severity and, in ``meta``, why it exists. :func:`sync_context` writes the
  suites, validation definitions and checkpoints of every use case into
  ``great_expectations/``; they are committed, and ``mlplatform contracts sync`` rewrites them
  after a spec change.
- :func:`run_checkpoint` validates a month's profile with the use case's checkpoint and
  starts rendering the result's Data Docs page in a thread.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from mlplatform.adapters import settings
from mlplatform.core import tlc
from mlplatform.core.spec import Contract, UseCase
from mlplatform.stages.contracts.raw import RawFile, RawRead
from mlplatform.stages.contracts.rules import (
    BAD_ROW_SHARE_CALIBRATION,
    HISTORY_MONTHS,
    KEY_COLUMNS,
    ROW_RULES,
    MoneyFindings,
    VolumeBounds,
    in_thread,
)

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.data_context.data_context.file_data_context import FileDataContext
    from great_expectations.expectations.metadata_types import FailureSeverity

# -- the file data context ----------------------------------------------------------------

DATASOURCE = "lake"
BATCH_DEFINITION = "month_profile"
DATA_DOCS_SITE = "local_site"


def gx_root() -> Path:
    """The GX file data context: ``MLPLATFORM_GX_ROOT`` or ``great_expectations/`` in the repo.

    Data Docs and validation results are written below it, in ``uncommitted/``; point the
    variable at a writable copy where the repository is read-only.
    """
    return Path(settings.get("MLPLATFORM_GX_ROOT"))


def data_docs_index(root: Path | None = None) -> Path:
    """The Data Docs home page (it exists once a validation has run)."""
    return (root or gx_root()) / "uncommitted" / "data_docs" / DATA_DOCS_SITE / "index.html"


def checkpoint_name(use_case: UseCase) -> str:
    return f"{use_case.name}_validate"


def validation_definition_name(use_case: UseCase) -> str:
    return f"{use_case.name}_contract"


def open_context(root: Path | None = None) -> FileDataContext:
    import great_expectations as gx

    root = root or gx_root()
    if not (root / "great_expectations.yml").is_file():
        raise FileNotFoundError(
            f"no Great Expectations context at {root}: set MLPLATFORM_GX_ROOT to the "
            "great_expectations/ folder of the repository (or a copy of it)"
        )
    return gx.get_context(mode="file", context_root_dir=str(root))


# -- the month's contract profile ---------------------------------------------------------


NONE = "none"
"""Profile value of a problem column when there is no problem."""


@dataclass(frozen=True)
class ContractProfile:
    """The month's contract profile: each problem column says :data:`NONE` when there is none."""

    file_problem: str
    unlisted_taxi_type: str
    missing_columns: str
    mistyped_columns: str
    unexpected_columns: str
    all_null_columns: str
    money_units: str
    empty_surcharge_columns: str
    misnamed_files: str
    row_count: int
    bad_row_share: float
    rule_counts: Mapping[str, int]
    """Rows breaking each row rule: the profile's ``rows_<rule>`` columns."""

    def row(self) -> dict[str, object]:
        """The one row the checkpoint validates (GX reads it as a one-row data frame)."""
        found = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "rule_counts"}
        return {**found, **{f"rows_{name}": n for name, n in self.rule_counts.items()}}


def contract_profile(
    files: Sequence[RawFile],
    reads: Sequence[RawRead],
    use_case: UseCase,
    rule_counts: Mapping[str, int],
    bad_row_share: float,
    money: MoneyFindings | None = None,
) -> ContractProfile:
    """The profile of a month whose ``files`` were read as ``reads``, with the row rules' counts
    and what its money columns say as a whole (:func:`.rules.money_findings`)."""
    money = money or MoneyFindings()
    pairs = list(zip(files, reads, strict=True))

    def named(f: RawFile) -> str:  # a problem names its file when there are several
        return f"{f.path.rsplit('/', 1)[-1]}: " if len(files) > 1 else ""

    def listed(found: Sequence[tuple[RawFile, str]], sep: str = "; ") -> str:
        return sep.join(f"{named(f)}{problem}" for f, problem in found) or NONE

    all_null = [
        (f, c)
        for f, r in pairs
        if r.trips is not None and r.trips.num_rows
        for c in KEY_COLUMNS
        if r.trips.column(c).null_count == r.trips.num_rows
    ]
    unlisted = [
        (
            f,
            f"{r.taxi_type} trips but {use_case.name} expects {' or '.join(f.taxi_types)} "
            f"(the schema tells: {r.evidence}): a {r.taxi_type} file named or landed as "
            f"{' or '.join(f.taxi_types)}",
        )
        for f, r in pairs
        if r.taxi_type is not None and r.taxi_type not in f.taxi_types
    ]
    misnamed = [
        (f, f"{f.path.rsplit('/', 1)[-1]} is named {kind} but holds {r.taxi_type} trips "
         f"(the schema tells: {r.evidence}); its rows are judged as {r.taxi_type}")
        for f, r in pairs
        if r.taxi_type in f.taxi_types
        and (kind := _named_taxi_type(f.path)) is not None
        and kind != r.taxi_type
    ]  # fmt: skip
    return ContractProfile(
        file_problem=listed([(f, r.file_problem) for f, r in pairs if r.file_problem]),
        unlisted_taxi_type=listed(unlisted),
        missing_columns=listed(_columns(pairs, "missing_columns")),
        mistyped_columns=listed(_columns(pairs, "mistyped_columns")),
        unexpected_columns=listed(_columns(pairs, "unexpected_columns")),
        all_null_columns=listed(all_null, sep=", "),
        money_units=money.cents or NONE,
        empty_surcharge_columns="; ".join(money.empty_surcharges) or NONE,
        misnamed_files="; ".join(problem for _, problem in misnamed) or NONE,
        row_count=sum(r.rows for r in reads),
        bad_row_share=bad_row_share,
        rule_counts=dict(rule_counts),
    )


def _named_taxi_type(path: str) -> str | None:
    """The taxi type a TLC file name says (``green_tripdata_2023-01.parquet``: green), if any."""
    name = tlc.parse_file_name(path.rsplit("/", 1)[-1])
    return None if name is None else name.taxi_type


def _columns(pairs: Sequence[tuple[RawFile, RawRead]], problem: str) -> list[tuple[RawFile, str]]:
    """Each file's columns with ``problem`` (a :class:`RawRead` field), where it has any."""
    return [(f, ", ".join(getattr(r, problem))) for f, r in pairs if getattr(r, problem)]


# -- the suite -----------------------------------------------------------------------------


BREACH, ROW, NOTICE = "breach", "row", "notice"
"""The contract's severities, in each expectation's ``meta`` (GX: critical, warning, info)."""

DELIVERY_CHECKS: tuple[tuple[str, str, str, str], ...] = (
    # (profile column that must be NONE, check, rule, why)
    (
        "file_problem",
        "file_problem",
        "the file is a readable parquet file",
        "Zero-byte, truncated or mislabelled (e.g. CSV) deliveries cannot be validated at all.",
    ),
    (
        "unlisted_taxi_type",
        "taxi_type",
        "each file holds trips of a taxi type the use case lists (data.taxi_types), the one its "
        "lake path names",
        "Green and yellow trips differ in zones, fares and trip mix; a use case reads the kinds "
        "it lists, each from its own file, with the kind kept as the taxi_type column.",
    ),
    (
        "missing_columns",
        "missing_columns",
        "every required TLC column is present (a renamed column counts as missing)",
        "Features, label and keys are built from these columns.",
    ),
    (
        "mistyped_columns",
        "mistyped_columns",
        "every known column has a type TLC has published it with, or null (a column TLC left "
        "entirely empty, as ehail_fee in green 2021-2022)",
        "A changed type (money as text, ids as floats) means the producer changed the format; "
        "casting it silently would hide that.",
    ),
    (
        "all_null_columns",
        "all_null_columns",
        "no key column is entirely empty",
        "An empty key column is a broken extract, not a few bad rows.",
    ),
    (
        "money_units",
        "money_units",
        "money amounts are dollars: the MTA tax and improvement surcharge are, at the median, the "
        "rates TLC's fare schedule in force charges, not 20 or more times them",
        "TLC publishes dollars; amounts in cents still add up row by row, so only the schedule's "
        "fixed charges tell, and a model or report reading them would be off a hundredfold.",
    ),
)
"""The breaches a delivery's reading can find: each a profile column that must say ``NONE``."""


def build_suite(use_case: UseCase) -> gx.ExpectationSuite:
    """The contract of ``use_case`` as a GX suite over the month's contract profile."""
    import great_expectations as gx
    from great_expectations.expectations.metadata_types import FailureSeverity

    c = use_case.contract
    expectations = [
        *(
            _none_expected(column, FailureSeverity.CRITICAL, _meta(check, BREACH, rule, why))
            for column, check, rule, why in DELIVERY_CHECKS
        ),
        *_count_expectations(c),
        *_row_expectations(),
        _none_expected(
            "empty_surcharge_columns",
            FailureSeverity.INFO,
            _meta(
                "empty_surcharge_columns",
                NOTICE,
                "no surcharge column is empty in every row whose pickup TLC's fare schedule charges it",
                "An entirely empty surcharge column in a regime that charges it means the producer "
                "stopped itemising it; totals that include it are counted by fare reading.",
            ),
        ),
        _none_expected(
            "misnamed_files",
            FailureSeverity.INFO,
            _meta(
                "misnamed_files",
                NOTICE,
                "a file named as one taxi type (<type>_tripdata_YYYY-MM.parquet) holds that type's trips",
                "Yellow and green files differ in their columns (tpep_/lpep_ times, airport_fee, "
                "trip_type); the columns tell the type, and its rows are judged as that type.",
            ),
        ),
        _none_expected(
            "unexpected_columns",
            FailureSeverity.INFO,
            _meta(
                "unexpected_columns",
                NOTICE,
                "the file has no columns outside the TLC format",
                "New columns are dropped by the normaliser; a notice tells the owner the format moved.",
            ),
        ),
    ]
    return gx.ExpectationSuite(
        name=c.suite,
        expectations=expectations,
        meta={
            "guards": "raw NYC TLC trip records (green and yellow), one month at a time",
            "generated_by": "mlplatform.stages.contracts.suite.build_suite from the use-case spec's contract",
        },
    )


class MetaNotes(TypedDict):
    """The notes Data Docs renders under an expectation."""

    format: Literal["markdown"]
    content: list[str]


class ExpectationMeta(TypedDict):
    """An expectation's ``meta``: the check it grades, how bad a failure is, the rule in
    words and why it exists (:func:`_checks` reads the check, severity and rule back)."""

    check: str
    severity: str
    rule: str
    why: str
    calibration: NotRequired[str]
    notes: MetaNotes


def _meta(check: str, severity: str, rule: str, why: str, calibration: str = "") -> ExpectationMeta:
    notes = [f"**{severity}**: {rule}.", f"*Why:* {why}"]
    if calibration:
        notes.append(f"*Calibrated on real TLC months:* {calibration}")
    written = MetaNotes(format="markdown", content=notes)
    if calibration:  # before the notes, where the suite files have always had it
        return ExpectationMeta(
            check=check, severity=severity, rule=rule, why=why, calibration=calibration, notes=written
        )
    return ExpectationMeta(check=check, severity=severity, rule=rule, why=why, notes=written)


def _none_expected(column: str, severity: FailureSeverity, meta: ExpectationMeta) -> Any:
    """The profile's ``column`` says there is no problem."""
    from great_expectations.expectations.core.expect_column_values_to_be_in_set import (
        ExpectColumnValuesToBeInSet,
    )

    return ExpectColumnValuesToBeInSet(column=column, value_set=[NONE], severity=severity, meta=dict(meta))


def _count_expectations(c: Contract) -> list[Any]:
    """Breaches counted over the whole month: no rows, volume off history, too many bad rows."""
    from great_expectations.expectations.core.expect_column_max_to_be_between import (
        ExpectColumnMaxToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_min_to_be_between import (
        ExpectColumnMinToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_between import (
        ExpectColumnValuesToBeBetween,
    )
    from great_expectations.expectations.metadata_types import FailureSeverity

    return [
        ExpectColumnMinToBeBetween(
            column="row_count",
            min_value=1,
            severity=FailureSeverity.CRITICAL,
            meta=dict(
                _meta("row_count", BREACH, "the file has rows", "An empty month is a failed delivery.")
            ),
        ),
        ExpectColumnValuesToBeBetween(
            column="row_count",
            min_value={"$PARAMETER": "volume_min_rows"},
            max_value={"$PARAMETER": "volume_max_rows"},
            severity=FailureSeverity.CRITICAL,
            meta=dict(
                _meta(
                    "volume",
                    BREACH,
                    f"the row count is within {c.volume_band[0]}x..{c.volume_band[1]}x the median of the "
                    f"previous {HISTORY_MONTHS} validated months (no history: any count)",
                    "A month far off the usual volume is a partial or duplicated delivery.",
                )
            ),
        ),
        ExpectColumnMaxToBeBetween(
            column="bad_row_share",
            min_value=0,
            max_value=c.max_bad_row_share,
            severity=FailureSeverity.CRITICAL,
            meta=dict(
                _meta(
                    "bad_row_share",
                    BREACH,
                    f"at most {c.max_bad_row_share:.1%} of rows break a row rule"
                    " (contract.max_bad_row_share)",
                    "A few bad rows are quarantined; many mean the whole delivery is suspect.",
                    BAD_ROW_SHARE_CALIBRATION,
                )
            ),
        ),
    ]


def _row_expectations() -> list[Any]:
    """One warning per row rule: no row of the month breaks it (bad rows are quarantined)."""
    from great_expectations.expectations.core.expect_column_max_to_be_between import (
        ExpectColumnMaxToBeBetween,
    )
    from great_expectations.expectations.metadata_types import FailureSeverity

    return [
        ExpectColumnMaxToBeBetween(
            column=f"rows_{rule.name}",
            min_value=0,
            max_value=0,
            severity=FailureSeverity.WARNING,
            meta=dict(_meta(rule.name, ROW, rule.rule, rule.why, rule.calibration)),
        )
        for rule in ROW_RULES
    ]


def sync_context(root: Path | None = None, use_cases: Sequence[UseCase] | None = None) -> Path:
    """Create or update the file data context for every use case (idempotent).

    Unchanged objects keep their ids, so running it twice changes no file.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from mlplatform.core import spec

    root = root or gx_root()
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", context_root_dir=str(root))
    quiet = {"globally": False, "metric_calculations": False}
    bars: Any = context.variables.progress_bars  # a plain mapping as read from the YAML
    if context.variables.analytics_enabled is not False or bars != quiet:
        context.variables.analytics_enabled = False  # no usage statistics sent anywhere
        context.variables.progress_bars = ProgressBarsConfig(**quiet)  # no progress bars in task logs
        context.variables.save()
    try:
        source = context.data_sources.get(DATASOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(DATASOURCE)
    built: dict[str, tuple[str, object]] = {}  # suite name: the first use case naming it, the suite's JSON
    for use_case in use_cases or spec.load_all():
        suite = build_suite(use_case)
        owner, first = built.setdefault(suite.name, (use_case.name, suite.to_json_dict()))
        if first != suite.to_json_dict():
            raise ValueError(
                f"use cases {owner} and {use_case.name} both name suite {suite.name!r} "
                "but their contracts differ; give each its own contract.suite"
            )
        _add_or_update(context, source, use_case, suite)
    return root


def _add_or_update(context: Any, source: Any, use_case: UseCase, suite: Any) -> None:
    """The use case's asset, batch definition, suite, validation definition and checkpoint."""
    import great_expectations as gx

    asset_name = use_case.data.dataset
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        batch = asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        batch = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    _keep_ids(context, suite)
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=validation_definition_name(use_case), data=batch, suite=suite)
    )
    context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=checkpoint_name(use_case),
            validation_definitions=[definition],
            # Data Docs are rendered for the one new result by the step itself, in a thread
            # (see run_checkpoint): the action would rebuild the whole site on the step's path.
            actions=[],
            result_format={"result_format": "SUMMARY"},
        )
    )


def _keep_ids(context: Any, suite: Any) -> None:
    """Give unchanged expectations their stored ids, so a sync without changes rewrites nothing.

    (``suites.add_or_update`` compares expectations including their ids, so it never matches.)
    """
    from great_expectations.exceptions.exceptions import DataContextError

    try:
        stored = context.suites.get(suite.name)
    except DataContextError:
        return

    def content(expectation: Any) -> str:
        config = expectation.configuration.to_json_dict()
        config.pop("id", None)
        return json.dumps(config, sort_keys=True)

    ids = {content(e): e.id for e in stored.expectations}
    for expectation in suite.expectations:
        expectation.id = ids.get(content(expectation))
    suite.id = stored.id


# -- the checkpoint run ----------------------------------------------------------------------


@dataclass
class Check:
    """One expectation's outcome."""

    check: str
    severity: str
    success: bool
    observed: Any
    rule: str


def run_checkpoint(
    use_case: UseCase, month: str, digest: str, profile: ContractProfile, volume: VolumeBounds, root: Path
) -> tuple[list[Check], dict[str, float | None], str | None, Future[Any]]:
    """Validate ``profile`` with the use case's checkpoint.

    Returns the checks, their statistics (GX's counts of evaluated, successful and
    unsuccessful expectations, and the success percentage), the result's Data Docs URL and
    the future of its page, which a thread renders while the step writes its outputs.
    """
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.exceptions.exceptions import DataContextError

    context = open_context(root)
    try:
        checkpoint = context.checkpoints.get(checkpoint_name(use_case))
    except DataContextError:
        raise FileNotFoundError(
            f"no checkpoint {checkpoint_name(use_case)} in {root}: the use case is new or its "
            "contract changed; run `mlplatform contracts sync` and commit "
            "great_expectations/"
        ) from None
    result = checkpoint.run(
        batch_parameters={"dataframe": pd.DataFrame([profile.row()])},
        expectation_parameters={"volume_min_rows": volume.min_rows, "volume_max_rows": volume.max_rows},
        run_id=RunIdentifier(run_name=f"{use_case.name}-{month}-{digest[:12]}", run_time=datetime.now(UTC)),
    )
    identifier, validation = next(iter(result.run_results.items()))
    checks = _checks(validation)
    docs = in_thread(
        lambda: context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=[identifier])
    )
    urls = context.get_docs_sites_urls(
        resource_identifier=identifier, site_names=[DATA_DOCS_SITE], only_if_exists=False
    )
    docs_url = next((u["site_url"] for u in urls if u.get("site_url")), None)
    return checks, _plain(dict(validation.statistics)), docs_url, docs


def _checks(validation: Any) -> list[Check]:
    """Each expectation's outcome, named and graded by its ``meta``."""
    checks = []
    for r in validation.results:
        meta = r.expectation_config.meta or {}
        observed = r.result.get("observed_value", r.result.get("partial_unexpected_list"))
        if r.exception_info and r.exception_info.get("raised_exception"):
            observed = f"error: {r.exception_info.get('exception_message')}"
        checks.append(
            Check(
                check=meta.get("check", r.expectation_config.type),
                severity=meta.get("severity", "breach"),
                success=bool(r.success),
                observed=_plain(observed),
                rule=meta.get("rule", ""),
            )
        )
    return checks


def _plain(value: Any) -> Any:
    """JSON-ready copy (numpy scalars and the like become plain numbers and strings)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
