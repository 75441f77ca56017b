"""Use-case specs load, validate and fail with messages that name the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlplatform.core import spec

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
    assert use_case.data.taxi_types == ("yellow", "green") and use_case.data.taxi_type == "yellow"
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


# --- taxi types ----------------------------------------------------------------------------


def test_the_single_taxi_type_key_is_not_a_spec_key(raw: dict) -> None:
    raw["data"].pop("taxi_types")
    raw["data"]["taxi_type"] = "green"
    with pytest.raises(spec.SpecError, match=r"data\.taxi_type"):
        spec.parse_spec(raw, "x.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"taxi_types": ["green", "green"]}, "lists a type twice"),
        ({"taxi_types": []}, "at least 1 item"),
        ({"taxi_types": ["blue"]}, "data.taxi_types.0"),
    ],
)
def test_bad_taxi_types_are_named(raw: dict, data: dict, message: str) -> None:
    raw["data"].pop("taxi_types")
    raw["data"].update(data)
    with pytest.raises(spec.SpecError, match=message):
        spec.parse_spec(raw, "x.yaml")


# --- use cases outside the package ---------------------------------------------------------


def _outside_use_case(folder: Path, raw: dict, name: str = "team_trip_duration") -> Path:
    """A spec and its own model module in ``folder``, as a team would add them."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = {**raw, "name": name, "model": {**raw["model"], "module": name}}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    (folder / f"{name}.py").write_text(
        '"""A team\'s model module."""\n\nFAMILIES = ("linear",)\n\n\n'
        "def build_estimator(family, params, features):\n"
        "    from sklearn.linear_model import Ridge\n\n"
        "    return Ridge(**params)\n"
    )
    return folder / f"{name}.yaml"


def test_use_cases_in_outside_folders_are_found_with_their_model_module(
    tmp_path: Path, raw: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.core import modelling

    path = _outside_use_case(tmp_path / "team", raw)
    monkeypatch.setenv(spec.USE_CASES_DIR_VARIABLE, str(tmp_path / "team"))
    assert set(spec.use_case_names()) == {*SHIPPED, "team_trip_duration"}
    use_case = spec.load_spec("team_trip_duration")
    assert use_case.model_file == path.with_suffix(".py")
    assert {u.name for u in spec.load_all()} == {*SHIPPED, "team_trip_duration"}
    module = modelling.model_module(use_case)
    assert module.__file__ == str(path.with_suffix(".py"))
    assert type(modelling.build_estimator(use_case, "linear", {"alpha": 2.0})).__name__ == "Ridge"
    # a shipped model module serves an outside spec that has none of its own
    shared = {**raw, "name": "team_shared"}
    (tmp_path / "team" / "team_shared.yaml").write_text(yaml.safe_dump(shared))
    assert spec.load_spec("team_shared").model_file == spec.USE_CASES_DIR / "taxi_trip_duration.py"


def test_outside_folder_problems_are_named(
    tmp_path: Path, raw: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(spec.USE_CASES_DIR_VARIABLE, str(tmp_path / "absent"))
    with pytest.raises(spec.SpecError, match="absent is not a folder"):
        spec.use_case_names()
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "taxi_trip_duration.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv(spec.USE_CASES_DIR_VARIABLE, str(tmp_path / "team"))
    with pytest.raises(spec.SpecError, match="defined twice"):
        spec.load_spec("taxi_trip_duration")
    raw = {**raw, "name": "team_model", "model": {**raw["model"], "module": "team_model"}}
    (tmp_path / "team" / "taxi_trip_duration.yaml").unlink()
    (tmp_path / "team" / "team_model.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(spec.SpecError, match=r"no file .*team_model\.py nor use_cases/team_model\.py"):
        spec.load_spec("team_model")


def test_zone_tagged_timestamps_are_converted_unless_the_spec_rejects_them(raw: dict) -> None:
    assert spec.parse_spec(raw).data.timezone_aware == "convert"
    raw["data"]["timezone_aware"] = "reject"
    assert spec.parse_spec(raw).data.timezone_aware == "reject"
    raw["data"]["timezone_aware"] = "utc"
    with pytest.raises(spec.SpecError, match=r"data\.timezone_aware: Input should be 'convert' or 'reject'"):
        spec.parse_spec(raw)


def test_model_families_are_read_from_the_model_module_without_importing_it() -> None:
    for use_case in spec.load_all():
        assert use_case.model.family in spec.model_families(use_case)
        assert use_case.model.baseline in spec.model_families(use_case)
