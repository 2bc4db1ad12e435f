"""Exceptions raised by synthenv. Every message says what was wrong, what was expected, and what to do."""

from __future__ import annotations


class SynthenvError(Exception):
    """Base class for all synthenv errors."""


class UnknownSynthError(SynthenvError, KeyError):
    """A synth name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ParameterError(SynthenvError, ValueError):
    """Unknown parameter names, NaN or out-of-range values."""


class ConfigError(SynthenvError, ValueError):
    """An argument or configuration value that is unknown, out of range, or inconsistent."""


class TargetError(SynthenvError, ValueError):
    """A target that cannot be used: missing, not audio, empty, silent or NaN."""


class BackendError(SynthenvError, RuntimeError):
    """A backend that is unknown, unavailable, or whose render failed."""
