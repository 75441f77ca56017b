"""The models being served: loaded versions, hot reload on promotion, and the A/B split.

:class:`ModelStore` follows the registry aliases ``champion`` and ``challenger`` (or serves
one fixed model, as SageMaker containers do). A new version is loaded beside the old one
and then swapped in with one reference assignment: requests in flight finish on the model
they started with, none is dropped. :class:`ModelLoader` resolves and loads in the
background, so the app answers from its first second: until a model is loaded it retries
with capped exponential backoff, then it follows the aliases every poll interval; its
thread never holds up the process's exit. :class:`Readiness` is what ``/ready`` and
``/health`` say about it, with the reason when nothing can be served yet
(:func:`explain` names it); with several workers, only once every one serves
(:class:`~mlplatform.serving.process.Marks`). :func:`assign_variant` keeps a caller on one
variant.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from mlplatform.adapters import registry
from mlplatform.adapters.registry import ModelNotFound
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import UseCase
from mlplatform.serving.process import Marks
from mlplatform.serving.schema import InputField, Validator, model_fields

if TYPE_CHECKING:  # pandas, numpy and the scoring stage load with the first model, after the app listens
    import pandas as pd

    from mlplatform.serving.lean import LeanModel

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
    # The lean single-trip path derived from this model (mlplatform.serving.lean), if it
    # gave the model's own answers at load time; ``lean_status`` says which path serves.
    lean: LeanModel | None = field(default=None, repr=False)
    lean_status: str = "normal path"

    @classmethod
    def load(cls, ref: ModelRef, use_case: UseCase, uri: str | None = None) -> LoadedModel:
        """Load ``ref`` (from ``uri`` if given); its inputs carry ``use_case``'s plausible ranges."""
        from mlplatform.stages import scoring

        uri = uri or ref.uri
        model = scoring.load_model(uri)
        fields = model_fields(model, use_case)
        task, predict = scoring.model_task(model), scoring.predictor(model)
        _check_predicts(ref, model, predict)
        from mlplatform.serving.lean import verified

        fast, status = verified(model, fields, predict, task)
        log.info("%s version %s: %s", ref.name, ref.version, status)
        return cls(ref, uri, model, fields, task, predict, Validator(fields), fast, status)


class ModelDoesNotPredict(RuntimeError):
    """A version that loads but fails on its own input example; it is never swapped in."""


def _check_predicts(ref: ModelRef, model: Any, predict: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Predict the version's logged input example before it can take traffic."""
    import pandas as pd

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


# Why nothing (or nothing new) can be served: the ``reason`` of /ready.
STARTING = "starting"
REGISTRY_UNREACHABLE = "registry_unreachable"
REGISTRY_ERROR = "registry_error"
NO_CHAMPION = "no_champion"
ARTIFACTS_UNAVAILABLE = "artifacts_unavailable"
MODEL_DOES_NOT_PREDICT = "model_does_not_predict"


class RegistryUnavailable(RuntimeError):
    """The registry could not be read: unreachable, timing out, or not answering MLflow's API."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ArtifactsUnavailable(RuntimeError):
    """A version resolved, but its model files cannot be loaded."""


@dataclass(frozen=True)
class Problem:
    """The last refresh that failed: why (one of the reasons above), what was said, when."""

    reason: str
    detail: str
    at: str


def explain(exc: BaseException) -> tuple[str, str]:
    """The reason code and a one-paragraph message for a failed refresh."""
    if isinstance(exc, ModelNotFound):
        return NO_CHAMPION, str(exc)
    if isinstance(exc, ModelDoesNotPredict):
        return MODEL_DOES_NOT_PREDICT, str(exc)
    if isinstance(exc, RegistryUnavailable):
        return exc.reason, str(exc)
    if isinstance(exc, ArtifactsUnavailable):
        return ARTIFACTS_UNAVAILABLE, str(exc)
    return REGISTRY_ERROR, f"{type(exc).__name__}: {exc}"


def _registry_trouble(exc: Exception, where: str) -> RegistryUnavailable:
    """What went wrong reading the registry at ``where``, from the exception MLflow raised."""
    import requests

    chain: list[BaseException] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if any(isinstance(c, requests.exceptions.RetryError) for c in chain) or "error responses" in text:
        return RegistryUnavailable(
            REGISTRY_ERROR, f"the registry at {where} answers with server errors (HTTP 5xx): {_short(text)}"
        )
    if any(isinstance(c, requests.exceptions.ConnectionError | requests.exceptions.Timeout) for c in chain):
        timed_out = any(isinstance(c, TimeoutError | requests.exceptions.Timeout) for c in chain)
        kind = "timed out" if timed_out else "cannot be reached"
        return RegistryUnavailable(REGISTRY_UNREACHABLE, f"the registry at {where} {kind}: {_short(text)}")
    if "not in a valid JSON format" in text:
        return RegistryUnavailable(
            REGISTRY_ERROR,
            f"the registry at {where} does not answer MLflow's API (MLFLOW_TRACKING_URI names something "
            f"else?): {_short(text)}",
        )
    return RegistryUnavailable(REGISTRY_ERROR, f"the registry at {where} failed: {_short(text)}")


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class Readiness(BaseModel):
    """What ``/ready`` answers: ready once a champion is loaded, else the reason why not."""

    model_config = ConfigDict(frozen=True)

    ready: bool
    reason: str | None
    detail: str | None
    attempts: int
    next_retry_at: str | None
    last_error: Problem | None  # the last failure, also while a model is served (the registry left)


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
        self.attempts = 0
        self.problem: Problem | None = None
        self.next_retry_at: str | None = None
        self.settled = threading.Event()  # set once the first refresh has succeeded or failed
        self._lock = threading.Lock()
        self.workers = Marks()  # with several workers, ready once every one serves

    def refresh(self) -> bool:
        """Load what the aliases point at if it changed; returns whether anything changed.

        Raises when the registry cannot be read or a model cannot be loaded; what was
        served before keeps being served then, and :attr:`problem` says why.
        """
        with self._lock:
            try:
                changed = self._refresh()
            except Exception as exc:
                self.reload_errors += 1
                reason, detail = explain(exc)
                self.problem = Problem(reason, detail, datetime.now(UTC).isoformat(timespec="seconds"))
                raise
            else:
                self.problem = None
                return changed
            finally:
                self.attempts += 1
                self.settled.set()

    def readiness(self) -> Readiness:
        """Ready with a champion loaded; else why not, the last error and the next retry."""
        served, problem = self.served, self.problem
        if served is not None:
            waiting = self.workers.waiting_for(serving=True)
            ready, reason, detail = waiting is None, None if waiting is None else STARTING, waiting
        elif problem is None:
            ready, reason = False, STARTING
            detail = f"loading {self.model_name} ({self.fixed_uri or 'alias ' + registry.CHAMPION})"
        else:
            ready, reason, detail = False, problem.reason, problem.detail
        return Readiness(
            ready=ready,
            reason=reason,
            detail=detail,
            attempts=self.attempts,
            next_retry_at=self.next_retry_at,
            last_error=problem,
        )

    def _refresh(self) -> bool:
        now = datetime.now(UTC).isoformat()
        if self.fixed_uri:
            if self.served is None:
                ref = ModelRef(self.model_name, self.fixed_version or "0", None, None, self.fixed_uri)
                self.served = Served(self._load(ref, self.fixed_uri), None, now)
                return True
            return False
        champion, challenger = self._resolve()
        wanted = (champion.version, challenger.version if challenger else None)
        current = self.served
        if current is not None and current.versions() == wanted:
            return False
        cache = {m.ref.version: m for m in (current.champion, current.challenger) if m} if current else {}
        for wanted_ref in (champion, challenger):
            if wanted_ref is not None and wanted_ref.version not in cache:
                log.info("loading %s version %s", wanted_ref.name, wanted_ref.version)
                cache[wanted_ref.version] = self._load(wanted_ref)
        # The swap: one assignment; requests holding the old Served finish on it.
        self.served = Served(cache[champion.version], cache[challenger.version] if challenger else None, now)
        self.reloads += 1
        log.info("now serving %s champion %s, challenger %s", self.model_name, *wanted)
        return True

    def _resolve(self) -> tuple[ModelRef, ModelRef | None]:
        """The versions the aliases name now; registry trouble is a :class:`RegistryUnavailable`."""
        from mlflow.exceptions import MlflowException

        from mlplatform.adapters import settings

        try:
            client = registry.client()
            champion = registry.resolve(self.model_name, registry.CHAMPION, client)
            challenger = None
            if self.follow_challenger:
                with contextlib.suppress(ModelNotFound):
                    challenger = registry.resolve(self.model_name, registry.CHALLENGER, client)
        except MlflowException as exc:
            raise _registry_trouble(exc, settings.tracking_uri()) from exc
        return champion, challenger

    def _load(self, ref: ModelRef, uri: str | None = None) -> LoadedModel:
        """Load ``ref``; files that cannot be read are :class:`ArtifactsUnavailable` naming the version."""
        from mlflow.exceptions import MlflowException

        from mlplatform.adapters import settings

        try:
            return LoadedModel.load(ref, self.use_case, uri)
        except ModelDoesNotPredict:
            raise
        except Exception as exc:  # missing files, unpickling errors: the version is unusable as it is
            if isinstance(exc, MlflowException):
                trouble = _registry_trouble(exc, settings.tracking_uri())
                if trouble.reason == REGISTRY_UNREACHABLE:  # not the version's fault: retry it
                    raise trouble from exc
            raise ArtifactsUnavailable(
                f"{ref.name} version {ref.version}: its model at {uri or ref.uri} cannot be loaded "
                f"({type(exc).__name__}: {_short(str(exc))}); register a version whose artifacts "
                "exist, or restore them"
            ) from exc


class ModelLoader:
    """A daemon thread that loads the models and then follows the aliases.

    Until a model is served it calls :meth:`ModelStore.refresh` with exponential backoff
    (``first_delay`` doubling up to ``max_delay``); then every ``poll_seconds`` (``0``:
    it stops there, ``POST /admin/reload`` asks again). A fixed model is loaded and not
    followed. A failure keeps what is served and is logged once per attempt with its reason.
    ``prepare`` runs first, on the thread (work the app must not wait for before it listens).
    Stopping never waits for a call in progress: the thread is a daemon, so a registry that
    does not answer cannot hold up the process's exit.
    """

    def __init__(
        self,
        store: ModelStore,
        poll_seconds: float,
        *,
        follow: bool = True,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.poll_seconds, self.follow = store, poll_seconds, follow
        self.prepare = prepare
        self.first_delay, self.max_delay = first_delay, max_delay
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="model-loader", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self.prepare is not None:
            try:
                self.prepare()
            except Exception:  # the document stays generic; loading matters more
                log.exception("could not prepare the %s request schema", self.store.model_name)
        delay = self.first_delay
        while not self._stop.is_set():
            try:
                self.store.refresh()
                failed = None
            except Exception as exc:
                failed = exc
            if self._stop.is_set():
                return
            if self.store.served is None:  # nothing to serve yet: back off, capped
                wait, delay = delay, min(delay * 2, self.max_delay)
            elif self.follow and self.poll_seconds > 0:
                wait = self.poll_seconds
            else:
                self.store.next_retry_at = None
                return
            self.store.next_retry_at = (datetime.now(UTC) + timedelta(seconds=wait)).isoformat(
                timespec="seconds"
            )
            if failed is not None:
                self._report(failed, wait)
            if self.store.workers.wait(self._stop, wait):
                return

    def _report(self, exc: Exception, wait: float) -> None:
        reason, detail = explain(exc)
        served = self.store.served
        keeps = f"; still serving version {served.champion.ref.version}" if served else ""
        log.warning("%s: %s (%s)%s; next try in %.0fs", self.store.model_name, reason, detail, keeps, wait)


def assign_variant(key: str, share: float) -> str:
    """``challenger`` for a ``share`` of keys, the same answer for the same key every time."""
    if share <= 0:
        return "champion"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "challenger" if bucket < share else "champion"
