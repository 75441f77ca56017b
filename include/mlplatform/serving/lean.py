"""The lean single-trip path: a loaded model's answers for a few trips without pandas.

A request of one trip spends about 30 ms in the logged model's ``predict``: a pandas frame,
the trip features, the column transformer and scikit-learn's per-call checks and thread
start-up, while the trees themselves take microseconds. :func:`compile_model` derives,
when a version is loaded, a :class:`LeanModel` from the logged model itself (the MLflow
model stays the single source of truth; nothing is trained or shipped beside it):

- the trip features computed from the checked request columns with plain Python;
- the fitted preprocessing turned into lookup tables by running each fitted transformer
  on the categories it knows (zone codes, the zone pair's target encoding, boroughs, the
  taxi type; an unseen value gets what the transformer gives an unseen value), or into
  its arithmetic (pass-through, scaling, the zone pair's pace);
- the fitted model's own parameters: the node arrays of every tree of a histogram
  gradient-boosting model, walked for all trees at once in numpy exactly as
  scikit-learn's predictor walks them (missing and unknown categories included), the
  trees' values added in scikit-learn's order; or a linear model's coefficients.

Anything it does not know (another transformer, a multi-class model, a sparse encoding
inside trees) raises :class:`NotCompilable`: the app then uses the normal path and says
so. :func:`verified` also compares the lean answers with the logged model's on the
model's input example and a built-in sample of valid but hostile trips (every zone,
unseen pairs, zero and maximal distances, any hour) and refuses the lean path when they
differ. Batches keep the vectorised path: the lean path is for up to :data:`MAX_ROWS` trips.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from mlplatform.core import tlc

log = logging.getLogger(__name__)

MAX_ROWS = 32
"""Requests (or micro-batches) of at most this many trips take the lean path."""
TOLERANCE = 1e-9
"""Relative and absolute tolerance of the check: the same answers up to float rounding."""
SAMPLE_ROWS = 512
AIRPORTS = frozenset(int(z) for z in tlc.AIRPORT_ZONES)
_UNSEEN_NUMBER = -987_654_321
_UNSEEN_TEXT = "\x00unseen"

Columns = dict[str, list[Any]]
Features = dict[str, np.ndarray]


class NotCompilable(ValueError):
    """The model has a part the lean path cannot reproduce; the normal path serves it."""


# ---------------------------------------------------------------------------- features


def trip_features(columns: Columns, needed: Sequence[str]) -> Features:
    """:func:`mlplatform.core.modelling.trip_features` for checked request columns, without pandas."""
    pickups = [_as_datetime(v) for v in columns["pickup_datetime"]]
    pu = np.array(columns["pu_location_id"], dtype=np.int64)
    do = np.array(columns["do_location_id"], dtype=np.int64)
    out: Features = {name: np.asarray(values) for name, values in columns.items()}
    out["pu_location_id"], out["do_location_id"] = pu, do
    out["trip_distance"] = np.array(columns["trip_distance"], dtype=np.float64)
    want = set(needed)
    if want & {"pickup_hour", "hour_band"}:
        out["pickup_hour"] = np.array([p.hour for p in pickups], dtype=np.int64)
    if want & {"pickup_weekday", "is_weekend"}:
        out["pickup_weekday"] = np.array([p.weekday() for p in pickups], dtype=np.int64)
        out["is_weekend"] = (out["pickup_weekday"] >= 5).astype(np.int64)
    if "is_airport_pickup" in want:
        out["is_airport_pickup"] = np.array([int(z) in AIRPORTS for z in pu.tolist()], dtype=np.int64)
    if "is_airport_dropoff" in want:
        out["is_airport_dropoff"] = np.array([int(z) in AIRPORTS for z in do.tolist()], dtype=np.int64)
    if "pu_borough" in want:
        out["pu_borough"] = tlc.borough_of(pu)
    if "do_borough" in want:
        out["do_borough"] = tlc.borough_of(do)
    if "pu_do_pair" in want:
        out["pu_do_pair"] = np.array([f"{p}_{d}" for p, d in zip(pu.tolist(), do.tolist(), strict=True)])
    missing = want - out.keys()
    if missing:
        raise NotCompilable(f"features the lean path does not derive: {sorted(missing)}")
    return out


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value  # type: ignore[no-any-return]  # datetime or pandas Timestamp: .hour, .weekday()


# ---------------------------------------------------------------------------- encodings

# A compiled transformer: features in, a dense block of its output columns out.
Block = Callable[[Features], np.ndarray]
# A one-hot block for linear models: per input column, the output column of each row (-1: none).
OneHot = Callable[[Features], np.ndarray]


def _lookup_tables(transformer: Any, columns: list[str]) -> tuple[list[dict[Any, float]], list[float]]:
    """Per column: what the fitted ``transformer`` gives each category it knows, and an unseen one.

    Runs the transformer itself on its categories (plus an unseen value), so infrequent
    levels, unknown values and target encodings come out exactly as it computes them.
    """
    import pandas as pd

    categories = [[c for c in cats if not _is_missing(c)] for cats in transformer.categories_]
    length = max(len(c) for c in categories) + 1
    probe = {}
    for name, cats in zip(columns, categories, strict=True):
        unseen = _UNSEEN_TEXT if any(isinstance(c, str) for c in cats) else _UNSEEN_NUMBER
        values = [*cats, unseen] + [cats[0]] * (length - len(cats) - 1)
        probe[name] = pd.Series(values, dtype=object if isinstance(unseen, str) else None)
    output = transformer.transform(pd.DataFrame(probe))
    output = np.asarray(output.toarray() if hasattr(output, "toarray") else output, dtype=np.float64)
    if output.shape[1] != len(columns):
        raise NotCompilable(
            f"{type(transformer).__name__} gives {output.shape[1]} columns for {len(columns)}"
        )
    tables, unseen_values = [], []
    for i, cats in enumerate(categories):
        tables.append({_key(c): float(output[j, i]) for j, c in enumerate(cats)})
        unseen_values.append(float(output[len(cats), i]))
    return tables, unseen_values


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _key(value: Any) -> Any:
    """A category as a dict key that the request's values match (numpy scalars to Python)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _table_block(transformer: Any, columns: list[str]) -> Block:
    tables, unseen = _lookup_tables(transformer, columns)

    def block(features: Features) -> np.ndarray:
        return np.column_stack(
            [
                np.array([table.get(v, default) for v in features[name].tolist()], dtype=np.float64)
                for name, table, default in zip(columns, tables, unseen, strict=True)
            ]
        )

    return block


def _passthrough_block(columns: list[str]) -> Block:
    def block(features: Features) -> np.ndarray:
        return np.column_stack([features[name].astype(np.float64) for name in columns])

    return block


def _scaler_block(scaler: Any, columns: list[str]) -> Block:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def block(features: Features) -> np.ndarray:
        x = np.column_stack([features[name].astype(np.float64) for name in columns])
        if mean is not None:
            x -= mean
        if scale is not None:
            x /= scale
        return x

    return block


def _pair_pace_block(pace: Any, columns: list[str]) -> Block:
    """The use case's ``PairPace``: its fitted tables as dicts, its arithmetic as it is."""
    zones, zone_pace, pairs, pair_pace, overall = pace.tables_
    by_zone = dict(zip(np.asarray(zones).tolist(), np.asarray(zone_pace).tolist(), strict=True))
    by_pair = dict(zip(np.asarray(pairs).tolist(), np.asarray(pair_pace).tolist(), strict=True))
    if set(columns) != {"trip_distance", "pu_location_id", "do_location_id"}:
        raise NotCompilable(f"PairPace over unexpected columns {columns}")

    def block(features: Features) -> np.ndarray:
        pu, do = features["pu_location_id"].tolist(), features["do_location_id"].tolist()
        paces = np.array(
            [
                by_pair[p * 1000 + d] if p * 1000 + d in by_pair else by_zone.get(p, overall)
                for p, d in zip(pu, do, strict=True)
            ],
            dtype=np.float64,
        )
        return np.column_stack([paces, paces * np.clip(features["trip_distance"], 0.0, 100.0)])

    return block


def _one_hot(encoder: Any, columns: list[str]) -> tuple[OneHot, int]:
    """A one-hot encoder as the output column of each value (unknown: none), and its width."""
    if getattr(encoder, "drop_idx_", None) is not None or getattr(encoder, "_infrequent_enabled", False):
        raise NotCompilable("a one-hot encoder that drops or groups categories")
    if encoder.handle_unknown != "ignore":
        raise NotCompilable("a one-hot encoder that refuses unknown categories")
    tables, offset = [], 0
    for cats in encoder.categories_:
        tables.append({_key(c): offset + i for i, c in enumerate(cats) if not _is_missing(c)})
        offset += len(cats)

    def positions(features: Features) -> np.ndarray:
        return np.column_stack(
            [
                np.array([table.get(v, -1) for v in features[name].tolist()], dtype=np.int64)
                for name, table in zip(columns, tables, strict=True)
            ]
        )

    return positions, offset


@dataclass
class Encoding:
    """A compiled column transformer: dense blocks and one-hot blocks, in output order."""

    parts: list[tuple[str, Any, int]]  # ("dense", Block, width) or ("onehot", OneHot, width)
    width: int

    def dense(self, features: Features) -> np.ndarray:
        if any(kind != "dense" for kind, _, _ in self.parts):
            raise NotCompilable("a sparse (one-hot) encoding feeding a model that needs dense inputs")
        return np.hstack([block(features) for _, block, _ in self.parts])


def compile_encoding(transformer: Any) -> Encoding:
    """The fitted ``ColumnTransformer`` of a pipeline as an :class:`Encoding`."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        OrdinalEncoder,
        StandardScaler,
        TargetEncoder,
    )

    if not isinstance(transformer, ColumnTransformer):
        raise NotCompilable(f"preprocessing {type(transformer).__name__} is not a ColumnTransformer")
    parts: list[tuple[str, Any, int]] = []
    for name, step, columns in transformer.transformers_:
        if step == "drop":
            continue
        if name == "remainder" or not all(isinstance(c, str) for c in columns):
            raise NotCompilable("a column transformer that passes its remainder through")
        columns = list(columns)
        if step == "passthrough" or (isinstance(step, FunctionTransformer) and step.func is None):
            parts.append(("dense", _passthrough_block(columns), len(columns)))
        elif isinstance(step, OrdinalEncoder):
            parts.append(("dense", _table_block(step, columns), len(columns)))
        elif isinstance(step, TargetEncoder):
            if step.target_type_ == "multiclass":
                raise NotCompilable("a multi-class target encoder")
            parts.append(("dense", _table_block(step, columns), len(columns)))
        elif isinstance(step, StandardScaler):
            parts.append(("dense", _scaler_block(step, columns), len(columns)))
        elif isinstance(step, OneHotEncoder):
            positions, width = _one_hot(step, columns)
            parts.append(("onehot", positions, width))
        elif type(step).__name__ == "PairPace" and hasattr(step, "tables_"):
            parts.append(("dense", _pair_pace_block(step, columns), 2))
        else:
            raise NotCompilable(f"transformer {name!r} ({type(step).__name__}) has no lean form")
    return Encoding(parts, sum(width for _, _, width in parts))


# ---------------------------------------------------------------------------- models


class Trees:
    """A fitted histogram gradient-boosting model's trees, walked for all trees at once."""

    def __init__(self, model: Any) -> None:
        if model.n_trees_per_iteration_ != 1:
            raise NotCompilable("a multi-class gradient-boosting model")
        arrays: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "left", "right")}
        arrays |= {"missing_left": [], "leaf": [], "categorical": [], "bitset": [], "value": []}
        roots, bitsets, offset, bitset_offset, depth = [], [], 0, 0, 0
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            n = len(nodes)
            roots.append(offset)
            leaf = nodes["is_leaf"].astype(bool)
            own = np.arange(n) + offset
            arrays["feature"].append(nodes["feature_idx"].astype(np.int64))
            arrays["threshold"].append(nodes["num_threshold"].astype(np.float64))
            arrays["left"].append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
            arrays["right"].append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
            arrays["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            arrays["leaf"].append(leaf)
            arrays["categorical"].append(nodes["is_categorical"].astype(bool))
            arrays["bitset"].append(nodes["bitset_idx"].astype(np.int64) + bitset_offset)
            arrays["value"].append(nodes["value"].astype(np.float64))
            raw_bitsets = np.asarray(predictor.raw_left_cat_bitsets)
            bitsets.append(raw_bitsets.reshape(-1, 8))
            bitset_offset += raw_bitsets.shape[0]
            offset += n
            depth = max(depth, int(predictor.get_max_depth()))
        flat = {k: np.concatenate(v) for k, v in arrays.items()}
        self.feature, self.threshold = flat["feature"], flat["threshold"]
        self.left, self.right, self.value = flat["left"], flat["right"], flat["value"]
        self.missing_left, self.leaf, self.categorical = (
            flat["missing_left"],
            flat["leaf"],
            flat["categorical"],
        )
        self.bitset = flat["bitset"]
        self.left_bitsets = np.concatenate(bitsets).astype(np.uint32) if bitset_offset else None
        self.roots = np.array(roots, dtype=np.int64)
        self.depth = depth
        known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
        self.known_bitsets = np.asarray(known, dtype=np.uint32)
        self.f_idx_map = np.asarray(f_idx_map, dtype=np.int64)
        self.baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
        self.inverse_link = model._loss.link.inverse
        self.any_categorical = bool(self.categorical.any())

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The raw predictions of rows ``x`` (the trees' input columns): baseline plus each tree."""
        n = x.shape[0]
        node = np.broadcast_to(self.roots, (n, self.roots.size)).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth + 1):
            if self.leaf[node].all():
                break
            value = x[rows, self.feature[node]]
            missing = np.isnan(value)
            go_left = value <= self.threshold[node]
            if self.any_categorical:
                go_left = np.where(self.categorical[node], self._categorical_left(node, value), go_left)
            go_left = np.where(missing, self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        # scikit-learn adds the trees to the baseline one after the other: so does cumsum.
        leaves = np.concatenate([np.full((n, 1), self.baseline), self.value[node]], axis=1)
        return np.cumsum(leaves, axis=1)[:, -1]

    def _categorical_left(self, node: np.ndarray, value: np.ndarray) -> np.ndarray:
        """scikit-learn's categorical split: in the left set, else known (right), else as missing."""
        if self.left_bitsets is None:
            return np.asarray(self.missing_left[node])
        negative = ~(value >= 0)  # negative or NaN: treated as missing
        code = np.where(negative, 0, value).astype(np.int64) & 0xFF  # the predictor casts to uint8
        word, bit = code >> 5, (code & 31).astype(np.uint32)
        in_left = (self.left_bitsets[self.bitset[node], word] >> bit) & 1
        known_rows = self.f_idx_map[self.feature[node]]
        known = (self.known_bitsets[known_rows, word] >> bit) & 1
        return np.where(
            negative,
            self.missing_left[node],
            np.where(in_left == 1, True, np.where(known == 1, False, self.missing_left[node])),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.inverse_link(self.raw(x)), dtype=np.float64)


@dataclass
class CategoryRemap:
    """The gradient-boosting model's own preprocessing: categorical columns re-coded and moved first."""

    categorical: list[int]
    numeric: list[int]
    tables: list[dict[float, float]]

    @classmethod
    def of(cls, model: Any, width: int) -> CategoryRemap | None:
        pre = getattr(model, "_preprocessor", None)
        if pre is None:
            return None
        mask = np.asarray(model.is_categorical_, dtype=bool)
        if mask.size != width:
            raise NotCompilable("the trees' inputs do not match the encoding's width")
        encoder = pre.named_transformers_["encoder"]
        tables = [
            {float(c): float(i) for i, c in enumerate(cats) if not _is_missing(c)}
            for cats in encoder.categories_
        ]
        return cls(list(np.flatnonzero(mask)), list(np.flatnonzero(~mask)), tables)

    def apply(self, x: np.ndarray) -> np.ndarray:
        recoded = [
            np.array([table.get(v, math.nan) for v in x[:, i].tolist()], dtype=np.float64)
            for i, table in zip(self.categorical, self.tables, strict=True)
        ]
        return np.column_stack([*recoded, x[:, self.numeric]])


class Linear:
    """A fitted linear model (``Ridge``, ``LinearRegression``, binary ``LogisticRegression``)."""

    def __init__(self, model: Any, encoding: Encoding) -> None:
        coef = np.asarray(model.coef_, dtype=np.float64)
        if coef.ndim == 2 and coef.shape[0] != 1:
            raise NotCompilable("a multi-output or multi-class linear model")
        self.coef = coef.ravel()
        self.intercept = float(np.asarray(model.intercept_).ravel()[0])
        if self.coef.size != encoding.width:
            raise NotCompilable("the linear model's coefficients do not match the encoding's width")
        self.encoding = encoding
        self.logistic = hasattr(model, "predict_proba")

    def predict(self, features: Features) -> np.ndarray:
        n = len(features["trip_distance"])
        total, start = np.zeros(n), 0
        for kind, part, width in self.encoding.parts:
            coef = self.coef[start : start + width]
            if kind == "dense":
                total += part(features) @ coef
            else:
                positions = part(features)
                total += np.where(positions >= 0, coef[np.maximum(positions, 0)], 0.0).sum(axis=1)
            start += width
        total += self.intercept
        if self.logistic:
            from scipy.special import expit

            return np.asarray(expit(total), dtype=np.float64)
        return total


# ---------------------------------------------------------------------------- the model


@dataclass
class LeanModel:
    """The lean form of a :class:`~mlplatform.core.modelling.TripModel` loaded from the registry."""

    features: tuple[str, ...]
    task: str
    labels: tuple[str, str]
    defaults: dict[str, str | float]  # inputs a request may leave out, and their values
    score: Callable[[Features], np.ndarray]  # regression: the prediction; else P(positive)
    family: str

    def answers(self, columns: Columns) -> list[dict[str, float | str]] | None:
        """One answer per trip, as the app sends them; ``None`` when a value is missing
        that has no default (the normal path decides what that means)."""
        columns = dict(columns)
        for name, default in self.defaults.items():
            if name in columns:
                columns[name] = [default if v is None else v for v in columns[name]]
        if any(v is None for values in columns.values() for v in values):
            return None
        scores = self.score(trip_features(columns, self.features)).tolist()
        if self.task == "regression":
            return [{"prediction": s} for s in scores]
        negative, positive = self.labels
        return [{"label": negative if p < 0.5 else positive, "probability": p} for p in scores]


def compile_model(pyfunc: Any) -> LeanModel:
    """The :class:`LeanModel` of a loaded MLflow pyfunc; :class:`NotCompilable` says why not."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    from mlplatform.adapters.pyfunc import trip_model

    try:
        inner = trip_model(pyfunc)
    except TypeError as exc:
        raise NotCompilable(f"not a model of this platform ({exc})") from None
    estimator = inner.estimator
    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        raise NotCompilable("the estimator is not a two-step pipeline (encoding, model)")
    features = inner.features
    encoding = compile_encoding(estimator.steps[0][1])
    model = estimator.steps[-1][1]
    score: Callable[[Features], np.ndarray]
    if isinstance(model, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        if isinstance(model, HistGradientBoostingClassifier) and len(model.classes_) != 2:
            raise NotCompilable("a multi-class classifier")
        trees, remap = Trees(model), CategoryRemap.of(model, encoding.width)

        def score(feats: Features) -> np.ndarray:
            x = encoding.dense(feats)
            return trees.predict(remap.apply(x) if remap is not None else x)

        if any(kind != "dense" for kind, _, _ in encoding.parts):
            raise NotCompilable("a one-hot encoding in front of gradient-boosted trees")
    elif isinstance(model, Ridge | LinearRegression | LogisticRegression):
        if isinstance(model, LogisticRegression) and len(model.classes_) != 2:
            raise NotCompilable("a multi-class logistic regression")
        score = Linear(model, encoding).predict
    else:
        raise NotCompilable(f"model {type(model).__name__} has no lean form")
    return LeanModel(
        features,
        inner.task,
        inner.labels or ("0", "1"),
        dict(inner.defaults),
        score,
        type(model).__name__,
    )


# ---------------------------------------------------------------------------- the check


def sample_columns(fields: Sequence[Any], rows: int = SAMPLE_ROWS, seed: int = 0) -> Columns:
    """Valid but hostile trips for ``fields`` (the app's input fields): every zone and many
    unseen pairs, the range's ends (zero and maximal distances), any hour of any day."""
    rng = np.random.default_rng(seed)
    columns: Columns = {}
    latest = datetime.now() + timedelta(days=300)
    earliest = datetime(2009, 1, 1)
    for f in fields:
        if f.kind in ("integer", "long"):
            first, last = int(f.low if f.low is not None else 0), int(f.high if f.high is not None else 1000)
            values: list[Any] = (np.arange(rows) % (last - first + 1) + first).tolist()
            rng.shuffle(values)
        elif f.kind in ("float", "double"):
            low = float(f.low if f.low is not None else 0.0)
            high = float(f.high if f.high is not None else 1e6)
            values = rng.uniform(low, min(high, 30.0), rows).round(2).tolist()
            values[: rows // 8] = rng.uniform(low, high, rows // 8).tolist()
            values[0], values[1] = low, high
        elif f.kind == "datetime":
            span = (latest - earliest).total_seconds()
            values = [earliest + timedelta(seconds=float(s)) for s in rng.uniform(0, span, rows).round()]
        elif f.kind == "string" and f.choices:
            values = [f.choices[i % len(f.choices)] for i in range(rows)]
            if not f.required:
                values[::5] = [None] * len(values[::5])
        elif f.kind == "boolean":
            values = [bool(i % 2) for i in range(rows)]
        else:
            raise NotCompilable(f"no sample for input {f.name!r} of kind {f.kind}")
        columns[f.name] = values
    return columns


def example_columns(pyfunc: Any, fields: Sequence[Any]) -> Columns | None:
    """The model's logged input example as request columns (``None`` without one)."""
    import pandas as pd

    try:
        example = pyfunc.input_example
    except Exception:
        return None
    if not isinstance(example, pd.DataFrame) or example.empty:
        return None
    names = [f.name for f in fields]
    if not set(names) <= set(example.columns):
        return None
    frame = example[names].astype(object).where(example[names].notna(), None)
    return {name: frame[name].tolist() for name in names}


def mismatches(lean: LeanModel, expected: Any, columns: Columns, task: str) -> list[str]:
    """Where the lean answers for ``columns`` differ from the logged model's frame ``expected``."""
    answers = lean.answers(columns)
    if answers is None:
        return ["the lean path declines rows that have no missing values"]
    if task == "regression":
        got = np.array([a["prediction"] for a in answers])
        want = expected["prediction"].to_numpy(dtype=np.float64)
    else:
        got = np.array([a["probability"] for a in answers])
        want = expected["probability"].to_numpy(dtype=np.float64)
        labels = expected["label"].astype(str).to_numpy()
        decisive = np.abs(want - 0.5) > TOLERANCE
        wrong = np.flatnonzero(decisive & (labels != np.array([a["label"] for a in answers])))
        if wrong.size:
            return [f"row {i}: label {answers[i]['label']} instead of {labels[i]}" for i in wrong[:5]]
    close = np.isclose(got, want, rtol=TOLERANCE, atol=TOLERANCE)
    return [f"row {i}: {got[i]!r} instead of {want[i]!r}" for i in np.flatnonzero(~close)[:5]]


def verified(
    pyfunc: Any, fields: Sequence[Any], predict: Callable[[Any], Any], task: str
) -> tuple[LeanModel | None, str]:
    """The lean form of ``pyfunc`` if it gives the logged model's answers, and what was decided.

    ``predict`` is the normal path (a frame of the inputs to the answer frame); it answers
    the model's input example and :func:`sample_columns`, and the lean path must agree on
    every row within :data:`TOLERANCE`.
    """
    from mlplatform.serving.schema import frame_of

    try:
        lean = compile_model(pyfunc)
        checks = [c for c in (example_columns(pyfunc, fields), sample_columns(fields)) if c is not None]
        for columns in checks:
            # The normal path answers each row alone: one call for all; the lean path in its sizes.
            expected = predict(frame_of(columns, fields)).reset_index(drop=True)
            for start in range(0, len(expected), MAX_ROWS):
                chunk = {k: v[start : start + MAX_ROWS] for k, v in columns.items()}
                wrong = mismatches(lean, expected.iloc[start : start + MAX_ROWS], chunk, task)
                if wrong:
                    raise NotCompilable(f"its answers differ from the logged model's: {'; '.join(wrong)}")
    except NotCompilable as exc:
        return None, f"normal path: {exc}"
    except Exception as exc:  # a compiler bug must never stop a model from being served
        log.exception("the lean path could not be derived")
        return None, f"normal path: deriving the lean path failed ({type(exc).__name__}: {exc})"
    return (
        lean,
        f"lean path ({lean.family}): requests of up to {MAX_ROWS} trips, checked against the logged model",
    )
