"""Where the Great Expectations file data context lives, and what its objects are called.

The suites (:mod:`mlplatform.stages.contracts.suite`) and the checkpoint runs
(:mod:`mlplatform.stages.contracts.checkpoint`) both open the context through here, so the
names of its datasource, batch definition, Data Docs site, validation definitions and
checkpoints have one home.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlplatform.adapters import settings
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    from great_expectations.data_context.data_context.file_data_context import FileDataContext

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
