"""``subtractive``: saw/pulse mix through a resonant low-pass with an envelope, ADSR amplitude.

SynthDef (sc/synthenv_subtractive.scd)::

    shape = Env([0, 1, sustain, sustain, 0], [attack, decay, (hold - attack - decay).max(0), release], -4)
    env   = EnvGen.ar(shape, doneAction: 2)
    fenv  = EnvGen.kr(shape)
    osc   = XFade2.ar(Saw.ar(freq), Pulse.ar(freq, width), mix * 2 - 1)   -- i.e. linear mix
    cut   = (cutoff * (2 ** (fenv_amt * fenv))).clip(20, SampleRate.ir * 0.45)
    Out.ar(out, RLPF.ar(osc, cut, rq) * env * 0.5)

The ADSR is timed: the release starts at ``max(hold, attack + decay)`` seconds. The filter
envelope is the same shape at control rate, scaled by ``fenv`` octaves.
"""

from __future__ import annotations

import numpy as np

from synthenv.spec import Param, SynthSpec
from synthenv.synths import dsp

GAIN = 0.5
CURVE = -4.0

PARAMS = (
    Param("freq", 55.0, 1760.0, 220.0, "exp", "Hz", "oscillator frequency (pitch)"),
    Param("mix", 0.0, 1.0, 0.0, "lin", "", "0 = saw, 1 = pulse"),
    Param("width", 0.05, 0.5, 0.5, "lin", "", "pulse width"),
    Param("cutoff", 80.0, 8000.0, 2000.0, "exp", "Hz", "low-pass cutoff"),
    Param("rq", 0.05, 1.0, 0.5, "exp", "", "reciprocal Q (lower = more resonance)"),
    Param("fenv", 0.0, 4.0, 1.0, "lin", "oct", "filter envelope amount"),
    Param("attack", 0.001, 0.5, 0.01, "exp", "s", "ADSR attack"),
    Param("decay", 0.01, 1.0, 0.2, "exp", "s", "ADSR decay"),
    Param("sustain", 0.0, 1.0, 0.6, "lin", "", "ADSR sustain level"),
    Param("hold", 0.05, 1.0, 0.6, "lin", "s", "note length: the release starts here"),
    Param("release", 0.01, 1.0, 0.2, "exp", "s", "ADSR release"),
)


def adsr_segments(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levels ``[B, 5]`` and times ``[B, 4]`` of this synth's timed ADSR (:func:`dsp.timed_adsr`)."""
    return dsp.timed_adsr(*(params[:, j] for j in (6, 7, 8, 9, 10)))


def render(params: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Numpy surrogate: float64 ``[B, P]`` physical params -> float32 ``[B, n]``."""
    freq, mix, width, cutoff, rq, fenv = (params[:, j] for j in range(6))
    osc = (1.0 - mix[:, None]) * dsp.saw(freq, n, sr) + mix[:, None] * dsp.pulse(freq, width, n, sr)
    levels, times = adsr_segments(params)
    env = dsp.envelope(levels, times, CURVE, n, sr)
    # EnvGen.kr: the same envelope, one value per control block, its segments counted in blocks
    n_blocks = -(-n // dsp.BLOCK_SIZE)
    fenv_kr = dsp.envelope(levels, times, CURVE, n_blocks, sr / dsp.BLOCK_SIZE)
    cut = np.clip(cutoff[:, None] * np.exp2(fenv[:, None] * fenv_kr), 20.0, sr * 0.45)
    out = dsp.rlpf(osc, cut, rq, sr) * env * GAIN
    return out.astype(np.float32)


SPEC = SynthSpec("subtractive", PARAMS, render, "saw/pulse -> resonant low-pass with envelope, ADSR")
