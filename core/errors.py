"""sls-py's errors. The CLI catches :class:`SlsPyError` once, prints its
message and hint on one line each, and exits non-zero; anything else is a bug.

    SlsPyError
     +-- ConfigError          pyproject.toml [tool.sls-py] is wrong
     +-- SpecError            the app declares something invalid
     +-- PluginError          a provider could not be loaded or is unknown
     +-- CapabilityError      the provider cannot do what the spec needs
     +-- NotSupported         the provider does not implement this command
     +-- FunctionFailed       a function ran and failed (exit code 1)
     +-- ProviderError        a provider's operation failed (cloud API errors)
"""

from __future__ import annotations

from typing import Any


class SlsPyError(Exception):
    """Base of every error sls-py reports to a user."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(SlsPyError):
    """The project configuration is wrong; the message names file and key."""


class SpecError(SlsPyError):
    """What the app declares is invalid."""


class PluginError(SlsPyError):
    """A provider plugin is unknown or failed to load."""


class CapabilityError(SlsPyError):
    """The chosen provider cannot honour a feature the spec uses."""


class NotSupported(SlsPyError):
    """The chosen provider does not implement a command."""


class ProviderError(SlsPyError):
    """A provider's operation failed (for example a cloud API call)."""


class FunctionFailed(SlsPyError):
    """A function ran and raised; ``error`` is its type, message and traceback."""

    exit_code = 1

    def __init__(self, function: str, error: Any) -> None:
        self.function = function
        self.error = error
        status = f" (status {error.status})" if getattr(error, "status", None) else ""
        message = f"{error.type}{status}: {error.message}"
        details = getattr(error, "details", None)
        if isinstance(details, list) and details:
            message += "".join(
                f"\n  {'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', d)}"
                if isinstance(d, dict)
                else f"\n  {d}"
                for d in details
            )
        super().__init__(message)
