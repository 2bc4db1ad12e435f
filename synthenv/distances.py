"""The distance registry: one documented definition per distance.

Every distance takes two :class:`~synthenv.features.Analysis` batches, ``ref`` (the target) and
``est`` (the candidates), which broadcast against each other (``[1]`` vs ``[B]`` is the common
case), and returns float32 ``[B]``. Both analyses are loudness-normalised by default (see
:func:`synthenv.features.analyze`), so the distances compare timbre and envelope, not level.

A distance that averages per-cell differences also registers their **residuals** (:func:`residuals`):
the differences ``est - ref`` ``[B, K]``, weighted so that ``sum(r**2)`` is their mean square averaged
the way the distance averages them. A Gauss-Newton refinement (the ``cmaes_lm`` search) works on them;
the distance itself still decides which candidate is closer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from synthenv.features import Analysis

MULTISCALE_FFTS = (2048, 1024, 512, 256, 128, 64)
#: ``audible``: its views (FFT size, hop n/4; mel bands) and a listener's range below the louder sound's
#: peak. The 4096-point view (at 22.05 kHz: 186 ms, 128 bands 26 Hz apart below 1 kHz) resolves the partials of low
#: notes and the level between them (breath, bow noise, room, ensemble), which shorter windows smear;
#: the 1024-point view (12 ms hop) keeps the attacks.
AUDIBLE_VIEWS = ((4096, 128), (2048, 64), (1024, 64))
AUDIBLE_RANGE_DB = 70.0
LOG_EPS = 1e-5


@dataclass(frozen=True)
class Distance:
    name: str
    fn: Callable[[Analysis, Analysis], np.ndarray]
    unit: str
    definition: str
    symmetric: bool = True
    needs: str = "audio"  # "audio" (Python extractor) or "server" (scsynth analysis frames)
    residual: Callable[[Analysis, Analysis], np.ndarray] | None = None  # see the module doc


_DISTANCES: dict[str, Distance] = {}


def register_distance(name: str, unit: str, definition: str, *, symmetric: bool = True, needs: str = "audio",
                      residual: Callable[[Analysis, Analysis], np.ndarray] | None = None):  # fmt: skip
    """Decorator: register ``fn(ref, est) -> [B]`` under ``name`` with its one-line definition (and its
    ``residual(ref, est) -> [B, K]``, if it has one: see the module doc)."""

    def deco(fn: Callable[[Analysis, Analysis], np.ndarray]):
        _DISTANCES[name] = Distance(name, fn, unit, definition, symmetric, needs, residual)
        return fn

    return deco


def get_distance(name: str) -> Distance:
    try:
        return _DISTANCES[name]
    except KeyError:
        raise ValueError(f"unknown distance {name!r}; available: {', '.join(_DISTANCES)}") from None


def available_distances(needs: str | None = None) -> list[str]:
    """Registered distance names; ``needs="audio"`` or ``"server"`` keeps those computed from that data."""
    return [n for n, d in _DISTANCES.items() if needs is None or d.needs == needs]


def compute(name: str, ref: Analysis, est: Analysis) -> np.ndarray:
    """Distance ``name`` between ``ref`` and ``est``: float32 ``[B]``."""
    return np.asarray(get_distance(name).fn(ref, est), dtype=np.float32).reshape(-1)


def has_residuals(name: str) -> bool:
    """Whether distance ``name`` registers residuals (what the ``cmaes_lm`` search refines on)."""
    return get_distance(name).residual is not None


def require_residuals(name: str) -> Callable[[Analysis, Analysis], np.ndarray]:
    """Distance ``name``'s residual function, or a ValueError that names the distances that have one."""
    fn = get_distance(name).residual
    if fn is None:
        with_r = ", ".join(n for n, d in _DISTANCES.items() if d.residual is not None)
        raise ValueError(f"distance {name!r} has no residuals to refine on (cmaes_lm needs them); these do: {with_r}")
    return fn


def residuals(name: str, ref: Analysis, est: Analysis) -> np.ndarray:
    """Distance ``name``'s residuals between ``ref`` and ``est``: float64 ``[B, K]`` (module doc)."""
    return np.asarray(require_residuals(name)(ref, est), dtype=np.float64)


def compute_all(ref: Analysis, est: Analysis, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Several distances at once, sharing one analysis each. By default every registered distance
    that both analyses have the data for (audio and/or server frames)."""
    if names is None:
        names = [n for n, d in _DISTANCES.items() if _has(ref, d.needs) and _has(est, d.needs)]
    return {n: compute(n, ref, est) for n in names}


def _has(an: Analysis, needs: str) -> bool:
    return (an.audio if needs == "audio" else an.frames) is not None


def _mean_over(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1).mean(axis=1)


def _cells(diff: np.ndarray) -> np.ndarray:
    """Per-cell differences ``[B, ...]`` as residuals ``[B, K]`` whose sum of squares is their mean square."""
    flat = diff.reshape(diff.shape[0], -1)
    return flat / math.sqrt(flat.shape[1])


def _logmel_residual(ref: Analysis, est: Analysis) -> np.ndarray:
    return _cells(est.logmel - ref.logmel)


@register_distance("logmel_l1", "dB", "mean |logmel_ref - logmel_est| over frames and mel bands (64 bands, dB)",
                   residual=_logmel_residual)
def logmel_l1(ref: Analysis, est: Analysis) -> np.ndarray:
    return _mean_over(np.abs(ref.logmel - est.logmel))


_DB = math.log(10.0) / 10.0  # natural-log units per dB of power (a Python float: float32 stays float32)


def _over_floor(db: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """``10·log10(10^(db/10) + 10^(floor/10))``: the level of a cell with the floor's power added, so
    what lies far below the floor reads as the floor and what lies far above it keeps its level."""
    return np.logaddexp(db * _DB, floor * _DB) / _DB


def _audible_diffs(ref: Analysis, est: Analysis):
    """``L_est - L_ref`` ``[B, T, M]`` in each of :data:`AUDIBLE_VIEWS` (the ``audible`` definition)."""
    for n_fft, n_mels in AUDIBLE_VIEWS:
        r, e = ref.logmel_at(n_fft, n_mels), est.logmel_at(n_fft, n_mels)
        peak = np.maximum(r.reshape(r.shape[0], -1).max(axis=1), e.reshape(e.shape[0], -1).max(axis=1))
        floor = (peak - AUDIBLE_RANGE_DB).astype(np.float32)[:, None, None]
        yield _over_floor(e, floor) - _over_floor(r, floor)


def _audible_residual(ref: Analysis, est: Analysis) -> np.ndarray:
    return np.concatenate([_cells(d) for d in _audible_diffs(ref, est)], axis=1) / math.sqrt(len(AUDIBLE_VIEWS))


@register_distance(
    "audible",
    "dB",
    f"mean over views {', '.join(f'FFT {n} ({m} mel bands)' for n, m in AUDIBLE_VIEWS)} (hop FFT/4) of mean "
    "|L_ref - L_est| over frames and bands, "
    f"L = 10 log10(P_mel + P_floor) with P_floor {AUDIBLE_RANGE_DB:g} dB below the louder sound's peak cell: a soft "
    "floor, so what lies below a listener's range barely counts and the distance stays smooth across it",
    residual=_audible_residual,
)
def audible(ref: Analysis, est: Analysis) -> np.ndarray:
    return sum(_mean_over(np.abs(diff)) for diff in _audible_diffs(ref, est)) / len(AUDIBLE_VIEWS)


def _mfcc_residual(ref: Analysis, est: Analysis) -> np.ndarray:
    return _cells(est.mfcc - ref.mfcc)


@register_distance("mfcc_l1", "", "mean |mfcc_ref - mfcc_est| over frames and the 13 MFCCs (c0 included)",
                   residual=_mfcc_residual)
def mfcc_l1(ref: Analysis, est: Analysis) -> np.ndarray:
    return _mean_over(np.abs(ref.mfcc - est.mfcc))


@register_distance(
    "lsd", "dB", "log-spectral distance: mean over frames of sqrt(mean over bins of (P_ref dB - P_est dB)^2)"
)
def lsd(ref: Analysis, est: Analysis) -> np.ndarray:
    diff = ref.power_db - est.power_db
    return np.sqrt(np.mean(np.square(diff), axis=-1)).mean(axis=-1)


@register_distance(
    "spectral_convergence",
    "",
    "||S_ref - S_est||_F / ||S_ref||_F on magnitude spectrograms (relative to the target: not symmetric)",
    symmetric=False,
)
def spectral_convergence(ref: Analysis, est: Analysis) -> np.ndarray:
    r, e = ref.magnitude(), est.magnitude()
    num = np.sqrt(np.sum(np.square(r - e), axis=(1, 2)))
    den = np.sqrt(np.sum(np.square(r), axis=(1, 2)))
    return num / np.maximum(den, 1e-12)


@register_distance(
    "multiscale",
    "",
    "mean over FFT sizes 2048..64 (hop n/4) of mean|S_ref - S_est| + mean|log(S_ref+1e-5) - log(S_est+1e-5)|",
)
def multiscale(ref: Analysis, est: Analysis) -> np.ndarray:
    total = 0.0
    for n_fft in MULTISCALE_FFTS:
        r, e = ref.magnitude(n_fft), est.magnitude(n_fft)
        lin = _mean_over(np.abs(r - e))
        log = _mean_over(np.abs(np.log(r + LOG_EPS) - np.log(e + LOG_EPS)))
        total = total + lin + log
    return total / len(MULTISCALE_FFTS)


@register_distance(
    "server_l1",
    "",
    "mean |F_ref - F_est| over frames and the 16 scaled server features (scsynth MFCC, centroid, flatness, loudness)",
    needs="server",
)
def server_l1(ref: Analysis, est: Analysis) -> np.ndarray:
    if ref.frames is None or est.frames is None:
        raise ValueError("server_l1 needs server features: use features='server' with the nrt or live backend")
    t = min(ref.frames.shape[1], est.frames.shape[1])
    return _mean_over(np.abs(ref.frames[:, :t] - est.frames[:, :t]))


def param_mae(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Mean absolute error between normalised parameter vectors ``[..., P]`` (0 = identical, 1 = opposite
    ends of every range): float32 ``[B]``."""
    diff = np.abs(np.atleast_2d(np.asarray(ref, dtype=np.float64)) - np.atleast_2d(np.asarray(est, dtype=np.float64)))
    return diff.mean(axis=-1).astype(np.float32)
