"""Exceptions shared across the core library.

Each one carries a message meant for the person running w4s: what went wrong and, where it helps, what to do.
"""


class W4SError(Exception):
    """Base class for errors that w4s reports to the user without a traceback."""


class SpecError(W4SError):
    """An optimization spec or config file is invalid; the message names the offending field."""


class UnknownPriceError(W4SError):
    """A model has no known price and the spec gives none: refusing to count it as $0."""


class BudgetExceeded(W4SError):
    """The run's spending limit is reached; no new LLM call may start."""


class ProviderError(W4SError):
    """An LLM provider answered with a non-retryable error (bad request, auth, unknown model)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def caused_by_request(self) -> bool:
        """A 400-class rejection of the request's content (e.g. a context too long), not of our credentials."""
        return self.status in (400, 413, 422)


class TransientProviderError(ProviderError):
    """An LLM provider failed in a way worth retrying (429, 5xx, timeout, connection reset)."""


class StoreError(W4SError):
    """The artifact store cannot be read or written."""


class ArtifactError(W4SError):
    """A packaged artifact (model weights, benchmark file) could not be fetched or failed verification."""
