"""Use-case specs load, validate and fail with messages that name the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlplatform import spec

SHIPPED = spec.use_case_names()


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((spec.USE_CASES_DIR / "taxi_trip_duration.yaml").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_specs_are_valid(name: str) -> None:
    use_case = spec.load_spec(name)
    assert use_case.name == name
    assert use_case.features.all


def test_taxi_trip_duration_is_shipped() -> None:
    use_case = spec.load_spec("taxi_trip_duration")
    assert use_case.task == "regression"
    assert use_case.target.column == "duration_min"
    assert use_case.data.taxi_type == "yellow"
    assert use_case.serving.mode in ("batch", "endpoint", "both")
    assert use_case.maturity_level in (2, 3, 4)


def test_taxi_generous_tip_derives_its_target_on_card_trips() -> None:
    use_case = spec.load_spec("taxi_generous_tip")
    assert use_case.task == "classification" and use_case.target.labels == ("ordinary", "generous")
    assert use_case.data.filter == "payment_type == 1"
    assert use_case.target.expression == "tip_amount >= 0.2 * fare_amount"
    assert use_case.monitoring.performance_metric == "log_loss"


def test_wrong_field_type_names_the_field(raw: dict) -> None:
    raw["training"]["window_months"] = "three"
    with pytest.raises(spec.SpecError, match=r"training\.window_months"):
        spec.parse_spec(raw)


def test_missing_field_names_the_field(raw: dict) -> None:
    del raw["promotion"]["min_relative_improvement"]
    with pytest.raises(
        spec.SpecError, match=r"promotion\.min_relative_improvement: required field is missing"
    ):
        spec.parse_spec(raw)


def test_unknown_key_names_the_key(raw: dict) -> None:
    raw["monitoring"]["drift_treshold"] = 0.2
    with pytest.raises(spec.SpecError, match=r"monitoring\.drift_treshold: unknown key"):
        spec.parse_spec(raw)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("maturity_level",), 5, "maturity_level"),
        (("serving", "mode"), "stream", r"serving\.mode"),
        (("contract", "volume_band"), [2.0, 0.5], r"contract\.volume_band"),
        (("contract", "max_bad_row_share"), 1.5, r"contract\.max_bad_row_share"),
        (("start_month",), "2024-13", "start_month"),
        (("model", "module"), "no_such_module", r"model\.module"),
        (("monitoring", "performance_metric"), "roc_auc", "performance_metric"),
    ],
)
def test_bad_values_are_rejected(raw: dict, path: tuple[str, ...], value: object, message: str) -> None:
    bad = copy.deepcopy(raw)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(spec.SpecError, match=message):
        spec.parse_spec(bad)


def test_spec_file_name_must_match(tmp_path: Path, raw: dict) -> None:
    path = tmp_path / "other_name.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(spec.SpecError, match="must equal the file name"):
        spec.load_spec_file(path)


def test_unreadable_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(spec.SpecError, match="cannot read spec"):
        spec.load_spec_file(path)


def test_unknown_use_case_lists_known_ones() -> None:
    with pytest.raises(spec.SpecError, match=r"known: .*taxi_trip_duration"):
        spec.load_spec("no_such_use_case")
