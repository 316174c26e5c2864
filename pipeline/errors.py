"""Exceptions that carry an exit code, so every entry point fails the same way.

ConfigError  -> exit 2: the user asked for something malformed (bad key, bad date range).
DataError    -> exit 1: the data is unusable (schema change, too many bad rows, bad payload).
TransientError: worth retrying under the task's retry policy (the runtime does it).
`mlflow_not_found(exc)`: MLflow's "no such model, version or alias" answer, which the registry and
the service read as "nothing there" rather than as a failure.
"""


class PipelineError(Exception):
    exit_code = 1


class ConfigError(PipelineError):
    exit_code = 2


class DataError(PipelineError):
    exit_code = 1


class SchemaChangeError(DataError):
    """The input's columns or types differ from the contract: the pipeline halts."""


class TransientError(PipelineError):
    """A failure that may succeed on retry (network blip, 5xx, rate limit)."""


def mlflow_not_found(exc: BaseException) -> bool:
    """MLflow's words for a missing model, version or alias (aliases: INVALID_PARAMETER_VALUE).
    MLflow is imported here, not at the top: every entry point imports this module (~6 s)."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and (
        exc.error_code == "RESOURCE_DOES_NOT_EXIST"
        or (exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))
    )
