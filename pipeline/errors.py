"""Exceptions that carry an exit code, so every entry point fails the same way.

ConfigError  -> exit 2: the user asked for something malformed (bad key, bad date range).
DataError    -> exit 1: the data is unusable (schema change, too many bad rows, bad payload).
TransientError: worth retrying under the task's retry policy (the runtime does it).
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
