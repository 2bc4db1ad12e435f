"""Numpy/numba building blocks that follow scsynth's UGen semantics.

Each function names the scsynth source it reproduces (SuperCollider 3.13, ``server/plugins``).
These are independent implementations written from the documented algorithms, batched over
voices: arrays are ``[B, n]`` (B voices, n samples) unless said otherwise.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: scsynth's default control block size (``-z 64``); control-rate UGens update once per block.
BLOCK_SIZE = 64


@numba.njit(cache=True, nogil=True)
def _envelope_kernel(levels: np.ndarray, times: np.ndarray, curves: np.ndarray, sr: float, out: np.ndarray) -> None:
    n = out.shape[1]
    for b in range(levels.shape[0]):
        i = 0
        for s in range(times.shape[1]):
            count = max(1, int(times[b, s] * sr))
            a = levels[b, s]
            span = levels[b, s + 1] - a
            c = curves[b, s]
            if abs(c) < 1e-3:
                for k in range(1, count + 1):
                    if i >= n:
                        break
                    out[b, i] = a + span * k / count
                    i += 1
            else:  # SC's recurrence for the curve formula: b1 *= grow; level = a2 - b1
                b1 = span / (1.0 - math.exp(c))
                a2 = a + b1
                grow = math.exp(c / count)
                for _ in range(count):
                    if i >= n:
                        break
                    b1 *= grow
                    out[b, i] = a2 - b1
                    i += 1
        last = levels[b, levels.shape[1] - 1]
        while i < n:
            out[b, i] = last
            i += 1


def envelope(levels: np.ndarray, times: np.ndarray, curve: float | np.ndarray, n: int, sr: float) -> np.ndarray:
    """An ``EnvGen.ar`` of a timed ``Env(levels, times, curve)``: float64 ``[B, n]``.

    Segment ``s`` goes from ``levels[:, s]`` to ``levels[:, s+1]`` over ``times[:, s]`` seconds
    (``max(1, int(time * sr))`` samples, as EnvGen counts them). Inside a segment, with
    ``x = k / samples`` (k = 1 .. samples), the level follows SC's curve formula
    (``Env``/EnvGen ``shape_Curve``, LFUGens.cpp)::

        a + (b - a) * (1 - exp(c * x)) / (1 - exp(c))      (|c| >= 0.001; linear otherwise)

    After the last segment the envelope holds its last level (the synths free themselves there).
    ``curve`` is a scalar, ``[B]`` or ``[B, S]``. For ``EnvGen.kr`` pass ``sr / BLOCK_SIZE`` and
    the number of blocks: a control-rate EnvGen counts its segments in blocks.
    """
    levels = np.ascontiguousarray(levels, dtype=np.float64)
    times = np.ascontiguousarray(times, dtype=np.float64)
    curve = np.asarray(curve, dtype=np.float64)
    if curve.ndim == 1:
        curve = curve[:, None]
    curves = np.ascontiguousarray(np.broadcast_to(curve, times.shape))
    out = np.empty((levels.shape[0], n), dtype=np.float64)
    _envelope_kernel(levels, times, curves, float(sr), out)
    return out


def sine_phase(freq: np.ndarray, sr: int) -> np.ndarray:
    """Phase (radians, float64 ``[B, n]``) of ``SinOsc.ar(freq)`` for an audio-rate ``freq[B, n]``.

    SinOsc (OscUGens.cpp) outputs ``sin(phase)`` and then advances the phase by ``2π·f/sr``, so
    ``phase[n] = Σ_{m < n} 2π·freq[m]/sr`` and the first sample is ``sin(0)``.
    """
    freq = np.asarray(freq, dtype=np.float64)
    phase = np.empty_like(freq)
    phase[:, 0] = 0.0
    np.cumsum(freq[:, :-1] * (2.0 * math.pi / sr), axis=1, out=phase[:, 1:])
    return phase


def sine_const(freq: np.ndarray, n: int, sr: int) -> np.ndarray:
    """``SinOsc.ar(freq)`` for a constant ``freq[B]`` (or ``[B, K]``): float64 ``[B, n]`` (``[B, K, n]``)."""
    freq = np.asarray(freq, dtype=np.float64)
    t = np.arange(n, dtype=np.float64)
    cycles = np.mod(freq[..., None] * t / sr, 1.0)  # keep the argument small for precision
    return np.sin(2.0 * math.pi * cycles)


@numba.njit(cache=True, nogil=True)
def _perc_sine_bank_kernel(
    freqs: np.ndarray, amps: np.ndarray, attack: np.ndarray, decay: np.ndarray, curve: float, sr: float, out: np.ndarray
) -> None:
    n = out.shape[1]
    for b in range(freqs.shape[0]):
        for k in range(freqs.shape[1]):
            amp = amps[b, k]
            if amp == 0.0:
                continue
            w = 2.0 * math.pi * freqs[b, k] / sr
            rc, rs = math.cos(w), math.sin(w)
            c, s = 1.0, 0.0  # cos and sin of the phase, rotated each sample
            i = 0
            for seg in range(2):  # Env.perc: 0 -> 1 over attack, 1 -> 0 over decay, same curve
                count = max(1, int((attack[b, k] if seg == 0 else decay[b, k]) * sr))
                span = 1.0 if seg == 0 else -1.0
                b1 = span / (1.0 - math.exp(curve))
                a2 = (0.0 if seg == 0 else 1.0) + b1
                grow = math.exp(curve / count)
                for _ in range(count):
                    if i >= n:
                        break
                    b1 *= grow
                    out[b, i] += amp * (a2 - b1) * s
                    c, s = c * rc - s * rs, s * rc + c * rs
                    if i % 4096 == 4095:  # renormalise against rounding drift
                        r = math.sqrt(c * c + s * s)
                        c /= r
                        s /= r
                    i += 1


def perc_sine_bank(
    freqs: np.ndarray, amps: np.ndarray, attack: np.ndarray, decay: np.ndarray, curve: float, n: int, sr: int
) -> np.ndarray:
    """``Σ_k amps[:, k] · SinOsc.ar(freqs[:, k]) · EnvGen.ar(Env.perc(attack[:, k], decay[:, k], 1, curve))``
    for ``[B, K]`` arrays: float64 ``[B, n]``, silent after each envelope ends.

    Each partial starts at phase 0 as SinOsc does; the envelope is :func:`envelope`'s formula,
    fused here so that no ``[B, K, n]`` array is built.
    """
    args = [
        np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float64), np.shape(freqs)))
        for a in (freqs, amps, attack, decay)
    ]
    out = np.zeros((args[0].shape[0], n), dtype=np.float64)
    if abs(curve) < 1e-3:
        raise ValueError("perc_sine_bank needs a non-zero curve")
    _perc_sine_bank_kernel(*args, float(curve), float(sr), out)
    return out


@numba.njit(cache=True, nogil=True)
def _sine_lookup(phase: int, sine: np.ndarray) -> float:
    """scsynth's SinOsc table read (``lookupi1``): 8192-point sine, linear interpolation, the phase a
    32-bit integer with 2^16 steps per table point."""
    idx = (phase >> 16) & (SINE_SIZE - 1)
    return sine[idx] + (sine[idx + 1] - sine[idx]) * ((phase & 0xFFFF) / 65536.0)


@numba.njit(cache=True, nogil=True)
def _fm_kernel(freq: np.ndarray, ratio: np.ndarray, index: np.ndarray, env: np.ndarray, gain: float, sr: float,
               sine: np.ndarray, out: np.ndarray) -> None:  # fmt: skip
    n = out.shape[1]
    cpstoinc = np.float32(SINE_SIZE * (1.0 / sr) * 65536.0)
    for b in range(freq.shape[0]):
        f = np.float32(freq[b])
        fm = np.float32(f * np.float32(ratio[b]))
        dev = np.float32(fm * np.float32(index[b]))
        inc_m = int(cpstoinc * fm)
        pm = 0
        pc = 0
        for i in range(n):
            mod = np.float32(_sine_lookup(pm, sine))
            out[b, i] = _sine_lookup(pc, sine) * env[b, i] * gain
            pm = (pm + inc_m) & 0xFFFFFFFF
            pc = (pc + int(cpstoinc * np.float32(f + mod * dev))) & 0xFFFFFFFF


def fm_operator_pair(freq: np.ndarray, ratio: np.ndarray, index: np.ndarray, env: np.ndarray, gain: float,
                     sr: int) -> np.ndarray:  # fmt: skip
    """``SinOsc.ar(freq + SinOsc.ar(freq·ratio) · freq·ratio·index) · env · gain`` for ``[B]`` params and
    an envelope ``[B, n]``: float64 ``[B, n]``. Both SinOscs read scsynth's sine table at their
    phase and then advance it (SinOsc_next_ikk / _ika, OscUGens.cpp): the phase is a 32-bit integer
    incremented by ``int(8192·65536/sr · f)``, ``f`` in float32; the carrier's ``f`` is the
    modulated frequency of that sample."""
    args = [np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(-1)) for a in (freq, ratio, index)]
    env = np.ascontiguousarray(env, dtype=np.float64)
    out = np.empty_like(env)
    _fm_kernel(*args, env, float(gain), float(sr), SINE_TABLE, out)
    return out


# scsynth's shared wavetables (SC_Wavetables): 8192-point sine and cosecant tables (+1 guard
# point), float32; the cosecant is marked bad within 8 points of 0, π and 2π.
SINE_SIZE = 8192
_BAD = 1e20


def _tables() -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(SINE_SIZE + 1)
    sine = np.sin(i * 2.0 * np.pi / SINE_SIZE).astype(np.float32).astype(np.float64)
    with np.errstate(divide="ignore"):
        csc = (1.0 / np.sin(i * 2.0 * np.pi / SINE_SIZE)).astype(np.float32).astype(np.float64)
    for k in range(0, 9):
        for j in (k, SINE_SIZE - k, SINE_SIZE // 2 - k, SINE_SIZE // 2 + k):
            csc[j] = _BAD
    return sine, csc


SINE_TABLE, CSC_TABLE = _tables()


@numba.njit(cache=True)
def _frac(phase: int) -> float:
    return (phase & 0xFFFF) / 65536.0


@numba.njit(cache=True)
def _blit_table(phase: int, n2: int, limit: float, sine: np.ndarray, csc: np.ndarray) -> float:
    """One band-limited impulse-train sample the way scsynth's Saw/Pulse compute it: the numerator
    ``sin(n2·θ)`` and the denominator ``1/sin θ`` (or ``sin θ`` near its zeros) looked up with linear
    interpolation in 8192-point tables, the phase a 32-bit integer (2^29 per 2π of the table).
    Returns ``numer/denom``, or ``limit`` (``2N+1``, the kernel's value at θ = 0) where ``|sin θ| < 0.0005``."""
    idx = (phase >> 16) & (SINE_SIZE - 1)
    t0 = csc[idx]
    t1 = csc[idx + 1]
    rphase = (phase * n2) & 0xFFFFFFFF
    ridx = (rphase >> 16) & (SINE_SIZE - 1)
    rf = _frac(rphase)
    numer = sine[ridx] + rf * (sine[ridx + 1] - sine[ridx])
    f = _frac(phase)
    if t0 == _BAD or t1 == _BAD:
        s0 = sine[idx]
        s1 = sine[idx + 1]
        denom = s0 + (s1 - s0) * f
        if abs(denom) < 0.0005:
            return limit
        return numer / denom
    return numer * (t0 + (t1 - t0) * f)


@numba.njit(cache=True, nogil=True)
def _saw_kernel(freq: np.ndarray, n: int, sr: float, sine: np.ndarray, csc: np.ndarray, out: np.ndarray) -> None:
    cpstoinc = SINE_SIZE * (1.0 / sr) * 65536.0 * 0.5
    for b in range(freq.shape[0]):
        f = np.float32(freq[b])
        harmonics = max(1, int(sr * 0.5 / f))
        scale = 0.5 / harmonics
        n2 = 2 * harmonics + 1
        inc = int(cpstoinc * f)
        phase = 0
        y1 = -0.46
        for i in range(n):
            y1 = (_blit_table(phase, n2, n2, sine, csc) - 1.0) * scale + 0.999 * y1
            out[b, i] = y1
            phase = (phase + inc) & 0xFFFFFFFF


def saw(freq: np.ndarray, n: int, sr: int) -> np.ndarray:
    """scsynth's ``Saw.ar(freq)`` for a constant ``freq[B]``: float64 ``[B, n]``.

    Saw (OscUGens.cpp) is not an ideal 1/k series: it leaky-integrates a band-limited impulse train.
    With ``N = int(sr/2/f)`` harmonics and the half-angle phase ``θ = π·f·n/sr``::

        x[n] = (sin((2N+1)θ)/sin θ - 1) · 0.5/N        (= (1/N)·Σ_{k=1..N} cos(2kθ); 1 where sin θ ≈ 0)
        y[n] = x[n] + 0.999 · y[n-1],  y[-1] = -0.46

    which makes the wave descending, about half the amplitude of a ±1 saw, and lifts the top
    harmonics. The table lookups are reproduced (:func:`_blit_table`): their interpolation error,
    integrated, is part of scsynth's low-frequency noise floor.
    """
    freq = np.ascontiguousarray(np.asarray(freq, dtype=np.float64).reshape(-1))
    out = np.empty((freq.shape[0], n), dtype=np.float64)
    _saw_kernel(freq, n, float(sr), SINE_TABLE, CSC_TABLE, out)
    return out


@numba.njit(cache=True, nogil=True)
def _pulse_kernel(
    freq: np.ndarray, width: np.ndarray, n: int, sr: float, block: int, sine: np.ndarray, csc: np.ndarray,
    out: np.ndarray,
) -> None:  # fmt: skip
    cpstoinc = SINE_SIZE * (1.0 / sr) * 65536.0 * 0.5
    for b in range(freq.shape[0]):
        f = np.float32(freq[b])
        harmonics = max(1, int(sr * 0.5 / f))
        scale = 0.5 / harmonics
        rscale = 1.0 / scale + 1.0
        n2 = 2 * harmonics + 1
        inc = int(cpstoinc * f)
        target = int(np.float32(width[b]) * (1 << 28))
        slope = int(target * (1.0 / block))  # the width offset ramps from 0 over the first block
        phase = 0
        offset = 0
        y1 = 0.0
        for i in range(n):
            pul1 = _blit_table(phase, n2, rscale, sine, csc)
            pul2 = _blit_table((phase + offset) & 0xFFFFFFFF, n2, rscale, sine, csc)
            y1 = (pul1 - pul2) * scale + 0.999 * y1
            out[b, i] = y1
            phase = (phase + inc) & 0xFFFFFFFF
            if i < block:
                offset = offset + slope
                if i == block - 1:
                    offset = target


def pulse(freq: np.ndarray, width: np.ndarray, n: int, sr: int, block: int = BLOCK_SIZE) -> np.ndarray:
    """scsynth's ``Pulse.ar(freq, width)`` for constant ``freq[B]``, ``width[B]``: float64 ``[B, n]``.

    Pulse (OscUGens.cpp) is the difference of two band-limited impulse trains (as in :func:`saw`),
    the second delayed by ``width`` of a period, scaled by ``0.5/N`` and leaky-integrated
    (``0.999``, ``y[-1] = 0``). Its width offset starts at 0 and ramps to ``width`` over the first
    control block.
    """
    freq = np.ascontiguousarray(np.asarray(freq, dtype=np.float64).reshape(-1))
    width = np.ascontiguousarray(np.broadcast_to(np.asarray(width, dtype=np.float64), freq.shape))
    out = np.empty((freq.shape[0], n), dtype=np.float64)
    _pulse_kernel(freq, width, n, float(sr), block, SINE_TABLE, CSC_TABLE, out)
    return out


@numba.njit(cache=True)
def _rlpf_coefs(freq: float, rq: float, sr: float) -> tuple[float, float, float]:
    w = freq * 2.0 * math.pi / sr
    d = math.tan(w * max(rq, 0.001) * 0.5)
    c = (1.0 - d) / (1.0 + d)
    b1 = (1.0 + c) * math.cos(w)
    b2 = -c
    a0 = (1.0 + c - b1) * 0.25
    return a0, b1, b2


@numba.njit(cache=True, nogil=True)
def _rlpf_kernel(x: np.ndarray, cutoff: np.ndarray, rq: np.ndarray, sr: float, block: int, out: np.ndarray) -> None:
    n = x.shape[1]
    loops = block // 3
    for b in range(x.shape[0]):
        a0, b1, b2 = _rlpf_coefs(cutoff[b, 0], rq[b], sr)
        y1 = 0.0
        y2 = 0.0
        prev = cutoff[b, 0]
        for blk in range(cutoff.shape[1]):
            start = blk * block
            if start >= n:
                break
            stop = min(n, start + block)
            f = cutoff[b, blk]
            da0 = 0.0
            db1 = 0.0
            db2 = 0.0
            na0, nb1, nb2 = a0, b1, b2
            if f != prev:
                na0, nb1, nb2 = _rlpf_coefs(f, rq[b], sr)
                da0 = (na0 - a0) / loops
                db1 = (nb1 - b1) / loops
                db2 = (nb2 - b2) / loops
                prev = f
            for i in range(start, stop):
                j = i - start
                if j < loops * 3:
                    if j > 0 and j % 3 == 0:
                        a0 += da0
                        b1 += db1
                        b2 += db2
                elif j == loops * 3:
                    a0, b1, b2 = na0, nb1, nb2
                y0 = a0 * x[b, i] + b1 * y1 + b2 * y2
                out[b, i] = y0 + 2.0 * y1 + y2
                y2 = y1
                y1 = y0
            a0, b1, b2 = na0, nb1, nb2


def rlpf(x: np.ndarray, cutoff_blocks: np.ndarray, rq: np.ndarray, sr: int, block: int = BLOCK_SIZE) -> np.ndarray:
    """scsynth's ``RLPF.ar(x, freq, rq)`` with a control-rate ``freq``: float64 ``[B, n]``.

    ``cutoff_blocks[B, n_blocks]`` is the cutoff (Hz) in each control block. Per RLPF_next
    (FilterUGens.cpp), with ``w = 2π·freq/sr``::

        D = tan(w·rq/2), C = (1-D)/(1+D), b1 = (1+C)·cos w, b2 = -C, a0 = (1+C-b1)/4
        y0 = a0·x + b1·y1 + b2·y2;  out = y0 + 2·y1 + y2

    When ``freq`` changes, the coefficients ramp linearly from the old to the new values over the
    block, one step every 3 samples (``mFilterLoops``), as scsynth does.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    cutoff = np.ascontiguousarray(cutoff_blocks, dtype=np.float64)
    rq = np.ascontiguousarray(np.asarray(rq, dtype=np.float64).reshape(-1))
    out = np.empty_like(x)
    _rlpf_kernel(x, cutoff, rq, float(sr), block, out)
    return out
