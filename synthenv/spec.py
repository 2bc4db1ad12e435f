"""The one parameter-spec class: a synth's knobs, their ranges and their mapping to [0, 1].

A :class:`SynthSpec` is everything that differs between synths: parameter names and ranges, the
SynthDef name scsynth knows it by, and the numpy surrogate of its DSP. Backends and the
environment only ever talk to synths through it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from synthenv.errors import ParameterError

Scale = Literal["lin", "exp"]

#: ``surrogate(params, sample_rate, n_samples) -> float32 [B, n_samples]``, ``params`` float64
#: ``[B, P]`` in physical units, columns in spec order.
Surrogate = Callable[[np.ndarray, int, int], np.ndarray]
#: ``(audio [N], sample_rate, f0 or None) -> {param: physical value}`` or None: a patch read from a sound
Reader = Callable[[np.ndarray, int, "float | None"], "dict[str, float] | None"]


@dataclass(frozen=True)
class Param:
    """One synth parameter.

    ``scale="exp"`` maps [0, 1] exponentially (``low * (high/low) ** x``), as for frequencies and
    times; it needs ``0 < low < high``. ``unit`` is a display string ("Hz", "s", "oct", "").
    """

    name: str
    low: float
    high: float
    default: float
    scale: Scale = "lin"
    unit: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} must be an identifier (it is a SynthDef control)")
        if not self.low < self.high:
            raise ValueError(f"parameter {self.name}: low {self.low} must be below high {self.high}")
        if self.scale not in ("lin", "exp"):
            raise ValueError(f"parameter {self.name}: scale must be 'lin' or 'exp', not {self.scale!r}")
        if self.scale == "exp" and self.low <= 0:
            raise ValueError(f"parameter {self.name}: an exp scale needs low > 0, got {self.low}")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"parameter {self.name}: default {self.default} outside [{self.low}, {self.high}]")


@dataclass(frozen=True)
class SynthSpec:
    """A synth: its parameters, its SynthDef name and its numpy surrogate.

    ``synthdef`` is the SynthDef's name (default ``synthenv_<name>``); its controls must be the
    parameter names (plus ``out``, the output bus). ``synthdef_path`` points at the SynthDef of a
    synth defined outside the package: a ``.scd`` file that evaluates to the SynthDef (compiled
    with sclang on first use) or a compiled ``.scsyndef``. Built-in synths ship compiled.

    Arrays of parameters are ``[..., P]`` with columns in :attr:`params` order. "Physical" arrays
    hold values in the parameters' units; "normalised" arrays hold values in [0, 1].
    """

    name: str
    params: tuple[Param, ...]
    surrogate: Surrogate
    description: str = ""
    synthdef: str = ""
    synthdef_path: str | None = None
    #: ``freq`` may sit at up to this harmonic of the pitch a listener hears (FM: the heard pitch is the
    #: partials' common spacing, which can lie below the carrier); a match tries those harmonics
    carrier_harmonics: int = 1
    #: a patch read straight from a sound (additive: each partial's level in its spectrum), which a match
    #: renders first among its starts (:meth:`read_start`); None for a synth that has no such reading
    reader: Reader | None = None
    #: the read patch again with each of these values set, rendered right after it among the starts: what the
    #: reader cannot read but a search should try from the read patch (additive: two choruses)
    read_variants: tuple[dict[str, float], ...] = field(default=(), compare=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"synth {self.name}: duplicate parameter names in {names}")
        reserved = {"out", "gate"} & set(names)
        if reserved:
            raise ValueError(f"synth {self.name}: parameter names {sorted(reserved)} are reserved")
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})
        for variant in self.read_variants:
            unknown = sorted(set(variant) - set(names))
            if unknown:
                raise ValueError(f"synth {self.name}: read_variants name unknown parameters {unknown}")
        h = self.carrier_harmonics
        if isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1 or (h > 1 and "freq" not in names):
            raise ValueError(f"synth {self.name}: carrier_harmonics must be an int >= 1 (above 1 only with a "
                             f"'freq' parameter), got {h!r}")  # fmt: skip
        if not self.synthdef:
            object.__setattr__(self, "synthdef", f"synthenv_{self.name}")

    # -- lookup ---------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def n_params(self) -> int:
        return len(self.params)

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise ParameterError(
                f"synth {self.name!r} has no parameter {name!r}; its parameters are: {', '.join(self.names)}"
            ) from None

    @property
    def low(self) -> np.ndarray:
        return np.array([p.low for p in self.params], dtype=np.float64)

    @property
    def high(self) -> np.ndarray:
        return np.array([p.high for p in self.params], dtype=np.float64)

    @property
    def defaults(self) -> np.ndarray:
        """Default values, physical units, float64 ``[P]``."""
        return np.array([p.default for p in self.params], dtype=np.float64)

    @property
    def _is_exp(self) -> np.ndarray:
        return np.array([p.scale == "exp" for p in self.params])

    # -- mapping --------------------------------------------------------------------------------
    def read_start(self, audio: np.ndarray, sample_rate: int, f0: float | None) -> np.ndarray | None:
        """:attr:`reader`'s patch for ``audio`` (pitch ``f0`` in Hz, or None) and then each of its
        :attr:`read_variants`, normalised ``[1 + len(read_variants), P]`` and clipped into the ranges; None
        when the synth has no reader or it could not read this sound."""
        if self.reader is None:
            return None
        patch = self.reader(np.asarray(audio), int(sample_rate), f0)
        if patch is None:
            return None
        rows = np.tile(self.defaults, (1 + len(self.read_variants), 1))
        for i, variant in enumerate(({}, *self.read_variants)):
            for name, value in {**patch, **variant}.items():
                rows[i, self.index(name)] = value
        return np.clip(self.normalize(rows), 0.0, 1.0)

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Physical ``[..., P]`` -> normalised [0, 1] ``[..., P]`` (values outside the range map outside)."""
        v = np.asarray(values, dtype=np.float64)
        lo, hi, ex = self.low, self.high, self._is_exp
        lo_e, hi_e = np.where(ex, lo, 1.0), np.where(ex, hi, np.e)  # safe for the lin columns
        lin = (v - lo) / (hi - lo)
        exp = np.log(np.maximum(v, 1e-300) / lo_e) / np.log(hi_e / lo_e)
        return np.where(ex, exp, lin)

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """Normalised ``[..., P]`` (clipped to [0, 1]) -> physical ``[..., P]``, float64."""
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
        lo, hi, ex = self.low, self.high, self._is_exp
        lo_e, hi_e = np.where(ex, lo, 1.0), np.where(ex, hi, np.e)  # safe for the lin columns
        lin = lo + x * (hi - lo)
        exp = lo_e * np.power(hi_e / lo_e, x)
        return np.where(ex, exp, lin)

    # -- validation -----------------------------------------------------------------------------
    def validate(self, values: np.ndarray) -> np.ndarray:
        """Check a physical ``[B, P]`` array: finite and inside every range. Returns float64 ``[B, P]``."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != self.n_params:
            raise ParameterError(
                f"synth {self.name!r} expects parameters of shape [B, {self.n_params}] "
                f"({', '.join(self.names)}), got shape {tuple(v.shape)}"
            )
        bad = ~np.isfinite(v)
        if bad.any():
            b, j = np.argwhere(bad)[0]
            raise ParameterError(
                f"synth {self.name!r}: parameter {self.names[j]!r} is {v[b, j]} (row {b}); "
                "values must be finite numbers"
            )
        tol = 1e-9 * (self.high - self.low)
        out = (v < self.low - tol) | (v > self.high + tol)
        if out.any():
            b, j = np.argwhere(out)[0]
            p = self.params[j]
            raise ParameterError(
                f"synth {self.name!r}: parameter {p.name!r} = {v[b, j]:g} is outside its range "
                f"[{p.low:g}, {p.high:g}] {p.unit}".rstrip()
            )
        return np.clip(v, self.low, self.high)

    def from_dicts(self, rows: Mapping[str, float] | Iterable[Mapping[str, float]]) -> np.ndarray:
        """One dict or a sequence of dicts (name -> physical value; missing names take defaults) ->
        validated physical float64 ``[B, P]``."""
        if isinstance(rows, Mapping):
            rows = [rows]
        rows = list(rows)
        if not rows:
            raise ParameterError("no parameter sets given: pass one dict or a non-empty list of dicts")
        out = np.tile(self.defaults, (len(rows), 1))
        for b, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ParameterError(f"parameter set {b} is a {type(row).__name__}, expected a dict name -> value")
            for name, value in row.items():
                j = self.index(name)
                try:
                    out[b, j] = float(value)
                except (TypeError, ValueError):
                    raise ParameterError(f"parameter {name!r} = {value!r} is not a number") from None
        return self.validate(out)

    def to_dict(self, values: Sequence[float] | np.ndarray) -> dict[str, float]:
        """Physical ``[P]`` -> ``{name: value}`` with plain floats."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        return {n: float(x) for n, x in zip(self.names, v, strict=True)}

    def describe(self) -> str:
        """A human-readable table of the parameters."""
        lines = [f"{self.name}: {self.description}".rstrip(": ")]
        for p in self.params:
            lines.append(
                f"  {p.name:<10} {p.low:>9g} .. {p.high:<9g} default {p.default:<8g} {p.scale:<3} {p.unit:<4} {p.doc}"
            )
        return "\n".join(lines)


def pitch_to_param(spec: SynthSpec, f0: float) -> float:
    """Clamp an estimated f0 (Hz) into the spec's ``freq`` range."""
    p = spec.params[spec.index("freq")]
    if not math.isfinite(f0) or f0 <= 0:
        return p.default
    return float(min(max(f0, p.low), p.high))
