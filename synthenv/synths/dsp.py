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


def timed_adsr(attack, decay, sustain, hold, release) -> tuple[np.ndarray, np.ndarray]:
    """Levels ``[..., 5]`` and times ``[..., 4]`` of the timed ADSR the sustained synths share,
    ``Env([0, 1, sustain, sustain, 0], [attack, decay, max(hold - attack - decay, 0), release])``, for
    arguments that broadcast together (``[B]`` per voice; additive: ``[B, K]`` per partial)."""
    attack, decay, sustain, hold, release = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (attack, decay, sustain, hold, release))
    )
    levels = np.stack([np.zeros_like(sustain), np.ones_like(sustain), sustain, sustain, np.zeros_like(sustain)], -1)
    times = np.stack([attack, decay, np.maximum(hold - attack - decay, 0.0), release], -1)
    return levels, times


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
def _adsr_sine_bank_kernel(freqs: np.ndarray, amps: np.ndarray, levels: np.ndarray, times: np.ndarray, curve: float,
                           gate: float, sr: float, ratio: np.ndarray, block: int, out: np.ndarray) -> None:  # fmt: skip
    n = out.shape[1]
    for b in range(freqs.shape[0]):
        moves = ratio[b].min() != 1.0 or ratio[b].max() != 1.0
        for k in range(freqs.shape[1]):
            amp = amps[b, k]
            if amp == 0.0:
                continue
            w = 2.0 * math.pi * freqs[b, k] / sr
            rc, rs = math.cos(w * ratio[b, 0]), math.sin(w * ratio[b, 0])
            c, s = 1.0, 0.0  # cos and sin of the phase, rotated each sample
            turn = block if moves else n  # the next sample whose block may change the frequency
            i = 0
            for seg in range(times.shape[2]):  # _envelope_kernel's recurrence, one partial's segments
                if levels[b, k, seg:].max() <= gate:  # silent from here on (a pluck's held and released 0)
                    break
                count = max(1, int(times[b, k, seg] * sr))
                a = levels[b, k, seg]
                b1 = (levels[b, k, seg + 1] - a) / (1.0 - math.exp(curve))
                a2 = a + b1
                grow = math.exp(curve / count)
                for _ in range(count):
                    if i >= n:
                        break
                    if i == turn:  # the frequency of this control block
                        wb = w * ratio[b, i // block]
                        rc, rs = math.cos(wb), math.sin(wb)
                        turn += block
                    b1 *= grow
                    level = a2 - b1
                    if level > gate:
                        out[b, i] += amp * level * s
                    c, s = c * rc - s * rs, s * rc + c * rs
                    if i % 4096 == 4095:  # renormalise against rounding drift
                        r = math.sqrt(c * c + s * s)
                        c /= r
                        s /= r
                    i += 1


def adsr_sine_bank(freqs: np.ndarray, amps: np.ndarray, levels: np.ndarray, times: np.ndarray, curve: float, n: int,
                   sr: int, gate: float = -np.inf, ratio: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``Σ_k amps[:, k] · SinOsc.ar(freqs[:, k] · ratio) · EnvGen.ar(Env(levels[:, k], times[:, k], curve))`` for
    ``[B, K]`` ``freqs`` and ``amps``, ``[B, K, S + 1]`` levels and ``[B, K, S]`` times: float64 ``[B, n]``,
    silent after each envelope ends (every envelope must end at 0).

    Each partial starts at phase 0 as SinOsc does; each envelope is :func:`envelope`'s formula, fused
    here so that no ``[B, K, n]`` array is built. ``Env.perc(attack, decay)`` is ``levels`` ``[0, 1, 0]``,
    ``times`` ``[attack, decay]``. With ``gate``, envelope levels at or below it count as 0
    (``env * (env > gate)``). ``ratio`` ``[B, ceil(n / BLOCK_SIZE)]``: a control-rate factor on every
    frequency (vibrato), one value per block as SinOsc reads a control-rate frequency (default 1).
    """
    shape = np.shape(freqs)
    freqs, amps = (np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float64), shape)) for a in (freqs, amps))
    times = np.ascontiguousarray(np.asarray(times, dtype=np.float64))
    levels = np.ascontiguousarray(np.broadcast_to(np.asarray(levels, dtype=np.float64), (*shape, times.shape[2] + 1)))
    if abs(curve) < 1e-3:
        raise ValueError("adsr_sine_bank needs a non-zero curve")
    out = np.zeros((shape[0], n), dtype=np.float64)
    _adsr_sine_bank_kernel(freqs, amps, levels, times, float(curve), float(gate), float(sr), _ratio(ratio, shape[0], n),
                           BLOCK_SIZE, out)  # fmt: skip
    return out


def _ratio(ratio: np.ndarray | None, b: int, n: int) -> np.ndarray:
    """A per-block frequency factor ``[b, ceil(n / BLOCK_SIZE)]`` (ones when None)."""
    blocks = -(-n // BLOCK_SIZE)
    if ratio is None:
        return np.ones((b, blocks))
    return np.ascontiguousarray(np.broadcast_to(np.asarray(ratio, dtype=np.float64), (b, blocks)))


@numba.njit(cache=True, nogil=True)
def _sine_sum_kernel(freqs: np.ndarray, amps: np.ndarray, stop: np.ndarray, sr: float, ratio: np.ndarray, block: int,
                     out: np.ndarray) -> None:  # fmt: skip
    for b in range(freqs.shape[0]):
        k_n = freqs.shape[1]
        c = np.ones(k_n)
        s = np.zeros(k_n)
        rc = np.ones(k_n)
        rs = np.zeros(k_n)
        moves = ratio[b].min() != 1.0 or ratio[b].max() != 1.0
        turn = 0  # the next sample whose block may change the frequencies (as _adsr_sine_bank_kernel's)
        for i in range(stop[b]):
            if i == turn:
                for k in range(k_n):
                    w = 2.0 * math.pi * freqs[b, k] * ratio[b, i // block] / sr
                    rc[k], rs[k] = math.cos(w), math.sin(w)
                turn = i + block if moves else stop[b]
            acc = 0.0
            for k in range(k_n):
                acc += amps[b, k] * s[k]
                c[k], s[k] = c[k] * rc[k] - s[k] * rs[k], s[k] * rc[k] + c[k] * rs[k]
            out[b, i] = acc
            if i % 4096 == 4095:  # renormalise against rounding drift
                for k in range(k_n):
                    r = math.sqrt(c[k] * c[k] + s[k] * s[k])
                    c[k] /= r
                    s[k] /= r


def sine_sum(freqs: np.ndarray, amps: np.ndarray, n: int, sr: int, stop: np.ndarray | None = None,
             ratio: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``Σ_k amps[:, k] · SinOsc.ar(freqs[:, k] · ratio)`` for ``[B, K]`` ``freqs`` and ``amps`` (each sine from
    phase 0, as SinOsc starts): float64 ``[B, n]``, zero from sample ``stop[b]`` on (default ``n``: a
    caller that multiplies by an envelope can stop where it ends). One pass over the samples per row,
    the K sines summed in registers: the cheap way to render partials that share one envelope. ``ratio``:
    a per-block frequency factor as :func:`adsr_sine_bank`'s."""
    freqs = np.ascontiguousarray(np.asarray(freqs, dtype=np.float64))
    amps = np.ascontiguousarray(np.broadcast_to(np.asarray(amps, dtype=np.float64), freqs.shape))
    stop = np.full(freqs.shape[0], n, dtype=np.int64) if stop is None else np.clip(stop, 0, n).astype(np.int64)
    out = np.zeros((freqs.shape[0], n), dtype=np.float64)
    _sine_sum_kernel(freqs, amps, stop, float(sr), _ratio(ratio, freqs.shape[0], n), BLOCK_SIZE, out)
    return out


@numba.njit(cache=True, nogil=True)
def _one_pole_kernel(x: np.ndarray, coef: np.ndarray, stop: np.ndarray, out: np.ndarray) -> None:
    for b in range(coef.shape[0]):
        c = coef[b]
        y = 0.0
        for i in range(stop[b]):
            y = x[i] + c * (y - x[i])
            out[b, i] = y


def one_pole(x: np.ndarray, coef: np.ndarray, stop: np.ndarray | None = None) -> np.ndarray:
    """``OnePole.ar(x, coef)`` (``y = (1 - coef) x + coef y[-1]``, from rest) of one signal ``x[n]`` with
    each of ``coef[B]`` (0 <= coef < 1: a low-pass of unit gain at DC): float64 ``[B, n]``, zero from
    sample ``stop[b]`` on (default ``n``)."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(-1))
    coef = np.ascontiguousarray(np.asarray(coef, dtype=np.float64).reshape(-1))
    n = x.shape[0]
    stop = np.full(coef.shape[0], n, dtype=np.int64) if stop is None else np.clip(stop, 0, n).astype(np.int64)
    out = np.zeros((coef.shape[0], n), dtype=np.float64)
    _one_pole_kernel(x, coef, stop, out)
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
def _rlpf_kernel(x: np.ndarray, cutoff: np.ndarray, rq: np.ndarray, sr: float, block: int, cutoff_init: np.ndarray,
                 x_init: np.ndarray, out: np.ndarray) -> None:  # fmt: skip
    n = x.shape[1]
    loops = block // 3
    for b in range(x.shape[0]):
        a0, b1, b2 = _rlpf_coefs(cutoff_init[b], rq[b], sr)
        y1 = a0 * x_init[b]  # the constructor's sample (RLPF_next_1) stays in the state
        y2 = 0.0
        prev = cutoff_init[b]
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


def rlpf(
    x: np.ndarray, cutoff_blocks: np.ndarray, rq: np.ndarray, sr: int, block: int = BLOCK_SIZE,
    cutoff_init: np.ndarray | None = None, x_init: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """scsynth's ``RLPF.ar(x, freq, rq)`` with a control-rate ``freq``: float64 ``[B, n]``.

    ``cutoff_blocks[B, n_blocks]`` is the cutoff (Hz) in each control block. Per RLPF_next
    (FilterUGens.cpp), with ``w = 2π·freq/sr``::

        D = tan(w·rq/2), C = (1-D)/(1+D), b1 = (1+C)·cos w, b2 = -C, a0 = (1+C-b1)/4
        y0 = a0·x + b1·y1 + b2·y2;  out = y0 + 2·y1 + y2

    When ``freq`` changes, the coefficients ramp linearly from the old to the new values over the
    block, one step every 3 samples (``mFilterLoops``), as scsynth does.

    By default the filter starts at rest with the first block's coefficients. scsynth's constructor
    (RLPF_Ctor) instead filters one sample, the input's constructor output ``x_init[B]``, with
    coefficients for the cutoff's constructor value ``cutoff_init[B]``, and keeps that state: pass
    both to reproduce it (block 0 then ramps from ``cutoff_init`` if the cutoff moved).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    cutoff = np.ascontiguousarray(cutoff_blocks, dtype=np.float64)
    rq = np.ascontiguousarray(np.asarray(rq, dtype=np.float64).reshape(-1))
    b = x.shape[0]
    init = cutoff[:, 0] if cutoff_init is None else cutoff_init
    init = np.ascontiguousarray(np.broadcast_to(np.asarray(init, dtype=np.float64), (b,)))
    x0 = np.ascontiguousarray(np.broadcast_to(np.asarray(0.0 if x_init is None else x_init, dtype=np.float64), (b,)))
    out = np.empty_like(x)
    _rlpf_kernel(x, cutoff, rq, float(sr), block, init, x0, out)
    return out


# -- time-varying Saw/Pulse, SinOsc.kr, Hasher noise, BPeakEQ (used by the ``voice`` synth) -------------------


@numba.njit(cache=True, nogil=True)
def _blit_ratio(phase: int, n2: int, sine: np.ndarray, csc: np.ndarray) -> tuple[float, bool]:
    """``sin(n2·θ)/sin θ`` as scsynth's Saw/Pulse look it up (see :func:`_blit_table`), and whether
    ``|sin θ| < 0.0005`` (then the ratio is not computed and the caller takes the kernel's limit)."""
    idx = (phase >> 16) & (SINE_SIZE - 1)
    t0 = csc[idx]
    t1 = csc[idx + 1]
    f = _frac(phase)
    rphase = (phase * n2) & 0xFFFFFFFF
    ridx = (rphase >> 16) & (SINE_SIZE - 1)
    numer = sine[ridx] + _frac(rphase) * (sine[ridx + 1] - sine[ridx])
    if t0 == _BAD or t1 == _BAD:
        denom = sine[idx] + (sine[idx + 1] - sine[idx]) * f
        if abs(denom) < 0.0005:
            return 0.0, True
        return numer / denom, False
    return numer * (t0 + (t1 - t0) * f), False


@numba.njit(cache=True, nogil=True)
def _saw_pulse_kernel(
    freq: np.ndarray, freq_init: np.ndarray, mix: np.ndarray, width: np.ndarray, n: int, sr: float, block: int,
    sine: np.ndarray, csc: np.ndarray, out: np.ndarray,
) -> None:  # fmt: skip
    cpstoinc = SINE_SIZE * (1.0 / sr) * 65536.0 * 0.5
    slope_factor = 1.0 / block
    for b in range(freq.shape[0]):
        m = mix[b]
        do_saw = m != 1.0
        do_pulse = m != 0.0
        prev_f = np.float32(freq_init[b])
        big_n = max(1, int(sr * 0.5 / prev_f))
        scale = 0.5 / big_n
        target = int(np.float32(width[b]) * (1 << 28))
        offset = 0
        phase = 0
        ys = -0.46  # Saw's integrator starts at -0.46, Pulse's at 0
        yp = 0.0
        for blk in range(freq.shape[1]):
            start = blk * block
            if start >= n:
                break
            stop = min(n, start + block)
            f = np.float32(freq[b, blk])
            cross = False
            prev_n = big_n
            prev_scale = scale
            if f != prev_f:  # Saw_next/Pulse_next: a new N; crossfade the kernels if it changed
                new_n = max(1, int(sr * 0.5 / f))
                if new_n != big_n:
                    inc = int(cpstoinc * max(prev_f, f))
                    cross = True
                else:
                    inc = int(cpstoinc * f)
                big_n = new_n
                scale = 0.5 / big_n
            else:
                inc = int(cpstoinc * f)
            prev_f = f
            n2 = 2 * big_n + 1
            pn2 = 2 * prev_n + 1
            rscale = 1.0 / scale + 1.0
            slope = int((target - offset) * slope_factor)
            xfade = 0.0
            for i in range(start, stop):
                r1, lim1 = _blit_ratio(phase, n2, sine, csc)
                if cross:
                    q1 = 0.0 if lim1 else _blit_ratio(phase, pn2, sine, csc)[0]
                    if do_saw:
                        if lim1:
                            ys = 1.0 + 0.999 * ys
                        else:
                            s1 = (q1 - 1.0) * prev_scale
                            ys = s1 + xfade * ((r1 - 1.0) * scale - s1) + 0.999 * ys
                    if do_pulse:
                        if lim1:
                            p1 = 1.0
                        else:
                            s1 = (q1 - 1.0) * prev_scale
                            p1 = s1 + xfade * ((r1 - 1.0) * scale - s1)
                        phase2 = (phase + offset) & 0xFFFFFFFF
                        r2, lim2 = _blit_ratio(phase2, n2, sine, csc)
                        if lim2:
                            p2 = 1.0
                        else:
                            s2 = (_blit_ratio(phase2, pn2, sine, csc)[0] - 1.0) * prev_scale
                            p2 = s2 + xfade * ((r2 - 1.0) * scale - s2)
                        yp = p1 - p2 + 0.999 * yp
                else:
                    if do_saw:
                        ys = (1.0 if lim1 else (r1 - 1.0) * scale) + 0.999 * ys
                    if do_pulse:
                        p1 = rscale if lim1 else r1
                        r2, lim2 = _blit_ratio((phase + offset) & 0xFFFFFFFF, n2, sine, csc)
                        p2 = rscale if lim2 else r2
                        yp = (p1 - p2) * scale + 0.999 * yp
                out[b, i] = (1.0 - m) * ys + m * yp
                phase = (phase + inc) & 0xFFFFFFFF
                offset = offset + slope
                xfade += slope_factor
            offset = target


def saw_pulse(
    freq_blocks: np.ndarray, mix: np.ndarray, width: np.ndarray, n: int, sr: int,
    freq_init: np.ndarray | None = None, block: int = BLOCK_SIZE,
) -> np.ndarray:  # fmt: skip
    """``Saw.ar(f)·(1-mix) + Pulse.ar(f, width)·mix`` for a control-rate ``f``: float64 ``[B, n]``.

    ``freq_blocks[B, n_blocks]`` is the frequency (Hz) in each control block: Saw and Pulse read
    their frequency once per block (``ZIN0``, OscUGens.cpp), whatever its rate. ``freq_init[B]`` is
    its value when the synth was built (the inputs' constructor outputs; default: the first block).
    When ``f`` changes, ``N = int(sr/2/f)`` is recomputed; if ``N`` changed, that block advances the
    phase by the larger of the old and new frequency and crossfades linearly from the old kernel
    (``2·N_old+1``, ``0.5/N_old``) to the new one over the block, as Saw_next/Pulse_next do; the
    kernels and integrators are otherwise those of :func:`saw` and :func:`pulse` (their phases are
    equal, so the mix shares their first lookup). ``mix`` and ``width`` are constant ``[B]``.
    With a constant frequency this equals ``(1-mix)·saw + mix·pulse``.
    """
    freq = np.ascontiguousarray(freq_blocks, dtype=np.float64)
    if freq.ndim != 2:
        raise ValueError(f"freq_blocks must be [B, n_blocks], got shape {freq.shape}")
    if freq.shape[1] * block < n:
        raise ValueError(f"{freq.shape[1]} blocks of {block} cover fewer than n = {n} samples")
    b = freq.shape[0]
    init = freq[:, 0] if freq_init is None else np.asarray(freq_init, dtype=np.float64).reshape(-1)
    args = [np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float64), (b,))) for a in (init, mix, width)]
    out = np.empty((b, n), dtype=np.float64)
    _saw_pulse_kernel(freq, *args, n, float(sr), block, SINE_TABLE, CSC_TABLE, out)
    return out


@numba.njit(cache=True, nogil=True)
def _sine_kr_kernel(rate: np.ndarray, phase0: np.ndarray, sr: float, block: int, sine: np.ndarray,
                    out: np.ndarray) -> None:  # fmt: skip
    cpstoinc = SINE_SIZE * (block / sr) * 65536.0  # SAMPLEDUR of a control-rate unit is one block
    radtoinc = SINE_SIZE * 65536.0 / (2.0 * math.pi)
    for b in range(rate.shape[0]):
        inc = int(cpstoinc * np.float32(rate[b]))
        offset = int(radtoinc * np.float32(phase0[b]))
        phase = 0
        for k in range(out.shape[1]):
            out[b, k] = _sine_lookup((phase + offset) & 0xFFFFFFFF, sine)
            phase = (phase + inc) & 0xFFFFFFFF


def sine_kr(rate: np.ndarray, n_blocks: int, sr: int, block: int = BLOCK_SIZE,
            phase: np.ndarray | float = 0.0) -> np.ndarray:  # fmt: skip
    """``SinOsc.kr(rate, phase)`` for a constant ``rate[B]`` and ``phase`` (radians, scalar or ``[B]``):
    float64 ``[B, n_blocks]``, one value per control block.

    The table read of :func:`fm_operator_pair` (SinOsc_next_ikk), advanced once per block by
    ``int(8192·65536·block/sr · rate)``, read ``int(8192·65536/2π · phase)`` ahead; the first block reads
    the phase alone (the constructor's sample does not advance it)."""
    rate = np.ascontiguousarray(np.asarray(rate, dtype=np.float64).reshape(-1))
    phase0 = np.ascontiguousarray(np.broadcast_to(np.asarray(phase, dtype=np.float64).reshape(-1), rate.shape))
    out = np.empty((rate.shape[0], n_blocks), dtype=np.float64)
    _sine_kr_kernel(rate, phase0, float(sr), block, SINE_TABLE, out)
    return out


@numba.njit(cache=True, nogil=True)
def _chorus_kernel(x: np.ndarray, depth: np.ndarray, rate: np.ndarray, sr: float, voices: int, base: float,
                   sine: np.ndarray, out: np.ndarray) -> None:  # fmt: skip
    n = x.shape[1]
    sr32 = np.float32(sr)
    cpstoinc = SINE_SIZE * 65536.0 / sr
    radtoinc = SINE_SIZE * 65536.0 / (2.0 * math.pi)
    offsets = np.array([int(radtoinc * np.float32(2.0 * math.pi * v / voices)) for v in range(voices)])
    for b in range(x.shape[0]):
        half = np.float32(np.float32(depth[b]) * np.float32(0.0005))  # cdepth * 0.0005: half the sweep (s)
        inc = int(cpstoinc * np.float32(rate[b]))
        phase = 0
        for t in range(n):
            acc = 0.0
            for v in range(voices):
                lfo = np.float32(_sine_lookup((phase + offsets[v]) & 0xFFFFFFFF, sine))
                d = max((half * (np.float32(1.0) + lfo) + np.float32(base)) * sr32, np.float32(1.0))
                i = int(d)
                frac = d - np.float32(i)
                d1 = x[b, t - i] if t - i >= 0 else 0.0
                d2 = x[b, t - i - 1] if t - i - 1 >= 0 else 0.0
                acc += d1 + frac * (d2 - d1)
            out[b, t] = acc / voices
            phase = (phase + inc) & 0xFFFFFFFF


def chorus(x: np.ndarray, depth: np.ndarray, rate: np.ndarray, sr: int, voices: int = 3,
           base: float = 0.001) -> np.ndarray:  # fmt: skip
    """The mean of ``voices`` ``DelayL.ar(x, max, base + depth·0.0005·(1 + SinOsc.ar(rate, 2π v / voices)))``
    (v = 0 .. voices-1) for signals ``x[B, n]``, sweeps ``depth[B]`` in ms, ``rate[B]`` in Hz and ``base`` in
    seconds: float64 ``[B, n]``, what came in before the first sample read as 0.

    The sines are SinOsc's (its table, its integer phase stepped by ``int(8192·65536/sr · rate)``, from
    ``int(8192·65536/2π · phase)``), the delay MulAdd's float32; DelayL (DelayUGens.cpp, DelayL_next_a) takes
    it in samples as a float32 ``d = i + frac`` (at least 1) and reads
    ``x[t - i] + frac (x[t - i - 1] - x[t - i])``. Its maximum (the SynthDef's 25 ms) is not applied."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    depth = np.ascontiguousarray(np.broadcast_to(np.asarray(depth, dtype=np.float64).reshape(-1), x.shape[:1]))
    rate = np.ascontiguousarray(np.broadcast_to(np.asarray(rate, dtype=np.float64).reshape(-1), x.shape[:1]))
    out = np.empty_like(x)
    _chorus_kernel(x, depth, rate, float(sr), int(voices), float(base), SINE_TABLE, out)
    return out


def midiratio(semitones: np.ndarray) -> np.ndarray:
    """SC's ``midiratio`` in float32, as the UnaryOpUGen computes it."""
    st = np.asarray(semitones, dtype=np.float32)
    return np.power(np.float32(2.0), st * np.float32(1.0 / 12.0)).astype(np.float64)


def hasher(x: np.ndarray) -> np.ndarray:
    """scsynth's ``Hasher.ar(x)`` (NoiseUGens.cpp, Hasher_next): float32 in, float32 out, in [-1, 1).

    Hasher hashes the *bit pattern* of each float32 input with Thomas Wang's 32-bit integer hash
    (``Hash(int32)``, Hash.h) and makes a float from the top 23 bits:
    ``float(0x40000000 | hash >> 9) - 3``, a float in [2, 4) moved to [-1, 1)."""
    h = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).copy()
    with np.errstate(over="ignore"):
        h += ~(h << np.uint32(15))
        h ^= h >> np.uint32(10)
        h += h << np.uint32(3)
        h ^= h >> np.uint32(6)
        h += ~(h << np.uint32(11))
        h ^= h >> np.uint32(16)
    return ((h >> np.uint32(9)) | np.uint32(0x40000000)).view(np.float32) - np.float32(3.0)


_NOISE_CACHE: dict[int, np.ndarray] = {}


def hash_noise(n: int) -> np.ndarray:
    """``Hasher.ar(Phasor.ar(0, 1, 0, 2**24))``: reproducible white noise, float32 ``[n]`` in [-1, 1).

    The Phasor counts 0, 1, 2, ... (exact in float32 below 2^24 samples, ~6 minutes at 44.1 kHz),
    so sample ``i`` is :func:`hasher` of ``float32(i)``, the same in scsynth and here, bit for bit.
    Read-only; cached by length."""
    if n >= 1 << 24:
        raise ValueError(f"hash_noise covers fewer than 2**24 samples, asked for {n}")
    noise = _NOISE_CACHE.get(n)
    if noise is None:
        noise = hasher(np.arange(n, dtype=np.float32))
        noise.flags.writeable = False
        if len(_NOISE_CACHE) > 8:
            _NOISE_CACHE.clear()
        _NOISE_CACHE[n] = noise
    return noise


@numba.njit(cache=True)
def _bpeakeq_coefs(freq: float, rq: float, db: float, sr: float) -> tuple[float, float, float, float, float]:
    a = 10.0 ** (db * 0.025)
    w0 = 2.0 * math.pi * freq / sr
    alpha = math.sin(w0) * 0.5 * rq
    b0rz = 1.0 / (1.0 + alpha / a)
    b1 = 2.0 * b0rz * math.cos(w0)
    return (1.0 + alpha * a) * b0rz, -b1, (1.0 - alpha * a) * b0rz, b1, (1.0 - alpha / a) * -b0rz


@numba.njit(cache=True, nogil=True)
def _bpeakeq_kernel(
    x: np.ndarray, freq: np.ndarray, rq: np.ndarray, db: np.ndarray, sr: float, block: int, x_init: np.ndarray,
    out: np.ndarray,
) -> None:  # fmt: skip
    n = x.shape[1]
    loops = block // 3
    for b in range(x.shape[0]):
        prev = np.float32(freq[b, 0])
        q = np.float64(np.float32(rq[b]))  # the inputs are floats, the coefficients doubles
        g = np.float64(np.float32(db[b]))
        a0, a1, a2, b1, b2 = _bpeakeq_coefs(np.float64(prev), q, g, sr)
        y1 = x_init[b]  # the constructor's sample: w = x + b1·0 + b2·0 stays in the state
        y2 = 0.0
        for blk in range(freq.shape[1]):
            start = blk * block
            if start >= n:
                break
            stop = min(n, start + block)
            f = np.float32(freq[b, blk])
            na0, na1, na2, nb1, nb2 = a0, a1, a2, b1, b2
            d0 = d1 = d2 = e1 = e2 = 0.0
            if f != prev:
                na0, na1, na2, nb1, nb2 = _bpeakeq_coefs(np.float64(f), q, g, sr)
                d0 = (na0 - a0) / loops
                d1 = (na1 - a1) / loops
                d2 = (na2 - a2) / loops
                e1 = (nb1 - b1) / loops
                e2 = (nb2 - b2) / loops
                prev = f
            for i in range(start, stop):
                j = i - start
                if j > 0 and j % 3 == 0 and j <= loops * 3:  # coefficients step after each 3 samples
                    a0 += d0
                    a1 += d1
                    a2 += d2
                    b1 += e1
                    b2 += e2
                y0 = x[b, i] + b1 * y1 + b2 * y2
                out[b, i] = a0 * y0 + a1 * y1 + a2 * y2
                y2 = y1
                y1 = y0
            a0, a1, a2, b1, b2 = na0, na1, na2, nb1, nb2


def bpeakeq(
    x: np.ndarray, freq_blocks: np.ndarray, rq: np.ndarray, db: np.ndarray, sr: int, block: int = BLOCK_SIZE,
    x_init: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """scsynth's ``BPeakEQ.ar(x, freq, rq, db)`` (FilterUGens.cpp, the RBJ peaking EQ) with a
    control-rate ``freq`` and constant ``rq[B]``, ``db[B]``: float64 ``[B, n]``.

    ``freq_blocks[B, n_blocks]`` is the centre frequency (Hz) in each block. With ``w0 = 2π·freq/sr``,
    ``A = 10^(db/40)``, ``α = sin(w0)·rq/2``, ``g = 1/(1 + α/A)``, a direct-form-II biquad in double::

        b1 = 2g·cos w0, b2 = -(1 - α/A)·g, a0 = (1 + α·A)·g, a1 = -b1, a2 = (1 - α·A)·g
        w = x + b1·w1 + b2·w2;  y = a0·w + a1·w1 + a2·w2

    A peak of ``db`` dB at ``freq``, bandwidth ``rq·freq``, unity gain far from it. When ``freq``
    changes, the coefficients ramp linearly over the block, one step after every 3 samples
    (BPeakEQ_next_kkk, ``mFilterSlope``). scsynth's constructor filters one sample, the input's
    constructor output ``x_init[B]`` (default 0: start at rest), and keeps that state."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    freq = np.ascontiguousarray(freq_blocks, dtype=np.float64)
    b = x.shape[0]
    rq, db, x0 = (np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float64), (b,)))
                  for a in (rq, db, 0.0 if x_init is None else x_init))  # fmt: skip
    out = np.empty_like(x)
    _bpeakeq_kernel(x, freq, rq, db, float(sr), block, x0, out)
    return out
