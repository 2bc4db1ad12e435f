"""Backends render batches of parameter sets. One protocol, several engines.

A backend is made for one sample rate and duration and renders any registered synth:
``backend.render(spec, params[B, P]) -> Rendered``. It knows nothing about targets or rewards.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from synthenv.errors import BackendError
from synthenv.spec import SynthSpec


@dataclass
class Rendered:
    """What a backend returns: float32 audio ``[B, N]`` and, for server features, frames ``[B, T, F]``."""

    audio: np.ndarray | None = None
    frames: np.ndarray | None = None


class Backend(Protocol):
    name: str
    sample_rate: int
    duration: float

    @property
    def n_samples(self) -> int: ...

    def render(self, spec: SynthSpec, params: np.ndarray) -> Rendered:
        """Render physical params float64 ``[B, P]`` (validated) of ``spec``."""
        ...

    def close(self) -> None: ...


def available_backends() -> list[str]:
    return ["numpy", "nrt", "live"]


#: the feature source each backend gives by default ("audio": Python extractor, "server": scsynth's)
DEFAULT_FEATURES = {"numpy": "audio", "nrt": "audio", "live": "server"}
#: every feature source each backend can give
FEATURE_SOURCES = {"numpy": ("audio",), "nrt": ("audio", "server"), "live": ("server",)}


def backend_class(name: str) -> type:
    """The class of a backend by name (importing it starts nothing)."""
    if name == "numpy":
        from synthenv.backends.numpy_backend import NumpyBackend

        return NumpyBackend
    if name == "nrt":
        from synthenv.backends.nrt import NrtBackend

        return NrtBackend
    if name == "live":
        from synthenv.backends.live import LiveBackend

        return LiveBackend
    raise BackendError(f"unknown backend {name!r}; available backends: {', '.join(available_backends())}")


def check_backend_args(name: str, sample_rate: int, duration: float, options: dict | None = None) -> type:
    """Check a backend's name, sample rate, duration and extra options without starting anything;
    :class:`BackendError` says what is wrong. Returns the backend class."""
    if not isinstance(name, str) or name not in available_backends():
        raise BackendError(f"unknown backend {name!r}; available backends: {', '.join(available_backends())}")
    if not isinstance(sample_rate, int | np.integer) or not 8000 <= sample_rate <= 192000:
        raise BackendError(f"sample_rate must be an integer between 8000 and 192000 Hz, got {sample_rate!r}")
    if not (isinstance(duration, int | float) and np.isfinite(duration) and 0.05 <= duration <= 60):
        raise BackendError(f"duration must be between 0.05 and 60 seconds, got {duration!r}")
    if options is not None and not isinstance(options, dict):
        raise BackendError(f"backend_options must be a dict, got {options!r}")
    cls = backend_class(name)
    known = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "sample_rate", "duration")]
    unknown = sorted(set(options or {}) - set(known))
    if unknown:
        raise BackendError(f"unknown option(s) {', '.join(map(repr, unknown))} for the {name} backend; "
                           f"it takes: {', '.join(known)}")  # fmt: skip
    return cls


def make_backend(name: str, *, sample_rate: int = 22050, duration: float = 1.0, **kwargs) -> Backend:
    """Make a backend by name; ``kwargs`` go to its constructor (e.g. ``server_features=True``)."""
    cls = check_backend_args(name, sample_rate, duration, kwargs)
    return cls(sample_rate=int(sample_rate), duration=float(duration), **kwargs)
