"""The models being served: loaded versions, hot reload on promotion, and the A/B split.

:class:`ModelStore` follows the registry aliases ``champion`` and ``challenger`` (or serves
one fixed model, as SageMaker containers do). A new version is loaded beside the old one
and then swapped in with one reference assignment: requests in flight finish on the model
they started with, none is dropped. :class:`AliasPoller` checks the aliases in the
background; :func:`assign_variant` keeps a caller on one variant.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mlplatform.adapters import registry
from mlplatform.adapters.registry import ModelNotFound
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import UseCase
from mlplatform.serving.schema import InputField, Validator, model_fields
from mlplatform.stages import scoring

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One registered version, loaded and ready to predict."""

    ref: ModelRef
    uri: str  # where it was loaded from
    pyfunc: Any
    fields: list[InputField]
    task: str
    predict: Callable[[pd.DataFrame], pd.DataFrame] = field(repr=False)
    validator: Validator = field(repr=False)

    @classmethod
    def load(cls, ref: ModelRef, use_case: UseCase, uri: str | None = None) -> LoadedModel:
        """Load ``ref`` (from ``uri`` if given); its inputs carry ``use_case``'s plausible ranges."""
        uri = uri or ref.uri
        model = scoring.load_model(uri)
        fields = model_fields(model, use_case)
        task, predict = scoring.model_task(model), scoring.predictor(model)
        _check_predicts(ref, model, predict)
        return cls(ref, uri, model, fields, task, predict, Validator(fields))


class ModelDoesNotPredict(RuntimeError):
    """A version that loads but fails on its own input example; it is never swapped in."""


def _check_predicts(ref: ModelRef, model: Any, predict: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Predict the version's logged input example before it can take traffic."""
    try:
        example = model.input_example
    except Exception:  # an example that cannot be read is no verdict on the model
        example = None
    if not isinstance(example, pd.DataFrame) or example.empty:
        return
    try:
        predict(example.head(5))
    except Exception as exc:
        raise ModelDoesNotPredict(
            f"{ref.name} version {ref.version} loads but fails on its own input example ({exc}); "
            "what was served before keeps being served"
        ) from exc


@dataclass(frozen=True)
class Served:
    """What the app serves right now; replaced as a whole, never changed in place."""

    champion: LoadedModel
    challenger: LoadedModel | None
    since: str

    def versions(self) -> tuple[str, str | None]:
        return self.champion.ref.version, self.challenger.ref.version if self.challenger else None


class ModelStore:
    """Follows the registry aliases and swaps in new versions once they have loaded."""

    def __init__(
        self,
        use_case: UseCase,
        *,
        fixed_uri: str | None = None,
        fixed_version: str | None = None,
        follow_challenger: bool = True,
    ) -> None:
        self.use_case, self.model_name = use_case, use_case.model_name
        self.fixed_uri = fixed_uri
        self.fixed_version = fixed_version
        self.follow_challenger = follow_challenger
        self.served: Served | None = None
        self.reloads = 0
        self.reload_errors = 0
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Load what the aliases point at if it changed; returns whether anything changed.

        Raises when the registry cannot be read or a model cannot be loaded; what was
        served before keeps being served then.
        """
        with self._lock:
            try:
                return self._refresh()
            except Exception:
                self.reload_errors += 1
                raise

    def _refresh(self) -> bool:
        now = datetime.now(UTC).isoformat()
        if self.fixed_uri:
            if self.served is None:
                ref = ModelRef(self.model_name, self.fixed_version or "0", None, None, self.fixed_uri)
                self.served = Served(LoadedModel.load(ref, self.use_case, self.fixed_uri), None, now)
                return True
            return False
        client = registry.client()
        champion = registry.resolve(self.model_name, registry.CHAMPION, client)
        challenger = None
        if self.follow_challenger:
            with contextlib.suppress(ModelNotFound):
                challenger = registry.resolve(self.model_name, registry.CHALLENGER, client)
        wanted = (champion.version, challenger.version if challenger else None)
        current = self.served
        if current is not None and current.versions() == wanted:
            return False
        cache = {m.ref.version: m for m in (current.champion, current.challenger) if m} if current else {}
        for wanted_ref in (champion, challenger):
            if wanted_ref is not None and wanted_ref.version not in cache:
                log.info("loading %s version %s", wanted_ref.name, wanted_ref.version)
                cache[wanted_ref.version] = LoadedModel.load(wanted_ref, self.use_case)
        # The swap: one assignment; requests holding the old Served finish on it.
        self.served = Served(cache[champion.version], cache[challenger.version] if challenger else None, now)
        self.reloads += 1
        log.info("now serving %s champion %s, challenger %s", self.model_name, *wanted)
        return True


class AliasPoller:
    """A background thread that calls :meth:`ModelStore.refresh` every ``seconds``."""

    def __init__(self, store: ModelStore, seconds: float) -> None:
        self.store, self.seconds = store, seconds
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="alias-poll", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.store.refresh()
            except Exception as exc:  # registry or artifact store down: keep serving, try again
                log.warning("could not check the %s aliases: %s", self.store.model_name, exc)


def assign_variant(key: str, share: float) -> str:
    """``challenger`` for a ``share`` of keys, the same answer for the same key every time."""
    if share <= 0:
        return "champion"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "challenger" if bucket < share else "champion"
