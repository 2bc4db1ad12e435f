"""``fm``: two-operator FM with a percussive envelope.

SynthDef (sc/synthenv_fm.scd)::

    env = EnvGen.ar(Env.perc(attack, decay, 1, curve), doneAction: 2)
    mod = SinOsc.ar(freq * ratio) * (freq * ratio * index)
    Out.ar(out, SinOsc.ar(freq + mod) * env * 0.3)

``index`` is the modulation index (peak frequency deviation / modulator frequency).
"""

from __future__ import annotations

import numpy as np

from synthenv.spec import Param, SynthSpec
from synthenv.synths import dsp

GAIN = 0.3

PARAMS = (
    Param("freq", 55.0, 1760.0, 440.0, "exp", "Hz", "carrier frequency (pitch)"),
    Param("ratio", 0.25, 8.0, 1.0, "exp", "", "modulator / carrier frequency ratio"),
    Param("index", 0.0, 10.0, 1.0, "lin", "", "modulation index"),
    Param("attack", 0.001, 0.5, 0.01, "exp", "s", "envelope attack time"),
    Param("decay", 0.05, 2.0, 0.5, "exp", "s", "envelope decay time"),
    Param("curve", -8.0, 2.0, -4.0, "lin", "", "envelope curvature (SC Env curve)"),
)


def render(params: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Numpy surrogate: float64 ``[B, P]`` physical params -> float32 ``[B, n]``."""
    freq, ratio, index, attack, decay, curve = (params[:, j : j + 1] for j in range(6))
    batch = params.shape[0]
    env = dsp.envelope(
        levels=np.tile([0.0, 1.0, 0.0], (batch, 1)),
        times=np.hstack([attack, decay]),
        curve=curve[:, 0],
        n=n,
        sr=sr,
    )
    return dsp.fm_operator_pair(freq, ratio, index, env, GAIN, sr).astype(np.float32)


#: with ``ratio`` = p/q the partials are ``freq * (q + k p) / q``: the heard pitch is ``freq / q``, so the
#: carrier of a sound heard at f0 can be any harmonic of f0
CARRIER_HARMONICS = 8

SPEC = SynthSpec("fm", PARAMS, render, "two-operator FM, percussive envelope", carrier_harmonics=CARRIER_HARMONICS)
