"""Error types every stage understands.

A `PipelineError` is permanent and meant for a person: its message is one sentence naming the
engine, the file or key, and the fix. The stage runner prints it and exits non-zero without a
traceback. Anything else escaping a stage is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """A permanent failure with a message written for the user."""


class ConfigError(PipelineError):
    """params.yaml, dvc config or the environment is wrong; nothing was done."""


class TransientError(Exception):
    """A failure worth retrying (network hiccup, throttling, lost DB connection)."""
