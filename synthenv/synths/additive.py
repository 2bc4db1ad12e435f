"""``additive``: 24 harmonic partials (8 set one by one, 16 above them on a tilt) with stiffness-like
inharmonicity and per-partial decay.

SynthDef (sc/synthenv_additive.scd)::

    k     = (1..24)
    amps  = [a1, ..., a8] ++ (a8 * (8 / (9..24)).pow(tilt))  -- partials 9..24 fall off as k^-tilt
    freqs = freq * k * (1 + (inharm * k.squared)).sqrt        -- stiff-string partials
    amps  = amps * (freqs < (SampleRate.ir * 0.5))           -- partials above Nyquist are muted
    envs  = k.collect { |kk| EnvGen.ar(Env.perc(attack, decay / (1 + (damp * (kk - 1))), 1, -4)) }
    Out.ar(out, (SinOsc.ar(freqs) * amps * envs).sum * 0.1)

``damp`` makes higher partials decay faster, as in plucked and struck instruments. The upper partials
let low notes reach the bright spectrum of real instruments (a cello's 130 Hz with 8 partials stops
at 1 kHz); with ``tilt = 1`` and the default ``a_k = 1/k`` the spectrum is a sawtooth's.
"""

from __future__ import annotations

import numpy as np

from synthenv.spec import Param, SynthSpec
from synthenv.synths import dsp

N_FREE = 8  # partials with their own amplitude
N_PARTIALS = 24
GAIN = 0.1
CURVE = -4.0

PARAMS = (
    Param("freq", 55.0, 1760.0, 220.0, "exp", "Hz", "fundamental frequency (pitch)"),
    *(
        Param(f"a{k}", 0.0, 1.0, round(1.0 / k, 4), "lin", "", f"amplitude of partial {k}")
        for k in range(1, N_FREE + 1)
    ),
    Param("tilt", 0.0, 4.0, 1.0, "lin", "", f"partials {N_FREE + 1}..{N_PARTIALS}: a_k = a{N_FREE} ({N_FREE}/k)^tilt"),
    Param("inharm", 0.0, 0.01, 0.0, "lin", "", "inharmonicity B: f_k = k f sqrt(1 + B k^2)"),
    Param("attack", 0.001, 0.5, 0.01, "exp", "s", "attack time"),
    Param("decay", 0.05, 2.0, 0.8, "exp", "s", "decay time of the first partial"),
    Param("damp", 0.0, 2.0, 0.5, "lin", "", "partial k decays (1 + damp (k-1)) times faster"),
)


def render(params: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Numpy surrogate: float64 ``[B, P]`` physical params -> float32 ``[B, n]``."""
    freq = params[:, 0:1]
    free = params[:, 1 : 1 + N_FREE]
    tilt, inharm, attack, decay, damp = (params[:, j : j + 1] for j in range(1 + N_FREE, 6 + N_FREE))
    upper = np.arange(N_FREE + 1, N_PARTIALS + 1, dtype=np.float64)[None, :]
    amps = np.concatenate([free, free[:, -1:] * (N_FREE / upper) ** tilt], axis=1)
    k = np.arange(1, N_PARTIALS + 1, dtype=np.float64)[None, :]
    freqs = freq * k * np.sqrt(1.0 + inharm * k**2)
    amps = amps * (freqs < sr * 0.5)
    out = dsp.perc_sine_bank(freqs, amps, attack, decay / (1.0 + damp * (k - 1.0)), CURVE, n, sr)
    return (out * GAIN).astype(np.float32)


SPEC = SynthSpec(
    "additive", PARAMS, render, "24 harmonic partials (8 free, 16 on a tilt), inharmonicity, per-partial decay"
)
