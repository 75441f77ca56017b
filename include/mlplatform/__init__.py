"""mlplatform: everything the DAGs, plugins and the command line run.

DAG files only wire these functions into tasks; the same code runs from the
``mlplatform`` command, in tests and in the serving app.
"""

import logging

__version__ = "0.1.0"


class _OnlyOnSageMaker(logging.Filter):
    """sagemaker-mlflow's request-header plugin reads the tracking URI as a SageMaker ARN; on
    any other tracking server it fails and MLflow logs a warning on every call. Drop those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "list index out of range" not in record.getMessage()


logging.getLogger("mlflow.tracking.request_header.registry").addFilter(_OnlyOnSageMaker())
