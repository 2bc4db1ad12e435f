"""``additive``: 8 harmonic partials with stiffness-like inharmonicity and per-partial decay.

SynthDef (sc/synthenv_additive.scd)::

    k     = (1..8)
    freqs = freq * k * (1 + (inharm * k.squared)).sqrt        -- stiff-string partials
    amps  = [a1, ..., a8] * (freqs < (SampleRate.ir * 0.5))  -- partials above Nyquist are muted
    envs  = k.collect { |kk| EnvGen.ar(Env.perc(attack, decay / (1 + (damp * (kk - 1))), 1, -4)) }
    Out.ar(out, (SinOsc.ar(freqs) * amps * envs).sum * 0.1)

``damp`` makes higher partials decay faster, as in plucked and struck instruments.
"""

from __future__ import annotations

import numpy as np

from synthenv.spec import Param, SynthSpec
from synthenv.synths import dsp

N_PARTIALS = 8
GAIN = 0.1
CURVE = -4.0

PARAMS = (
    Param("freq", 55.0, 1760.0, 220.0, "exp", "Hz", "fundamental frequency (pitch)"),
    *(
        Param(f"a{k}", 0.0, 1.0, round(1.0 / k, 4), "lin", "", f"amplitude of partial {k}")
        for k in range(1, N_PARTIALS + 1)
    ),
    Param("inharm", 0.0, 0.01, 0.0, "lin", "", "inharmonicity B: f_k = k f sqrt(1 + B k^2)"),
    Param("attack", 0.001, 0.5, 0.01, "exp", "s", "attack time"),
    Param("decay", 0.05, 2.0, 0.8, "exp", "s", "decay time of the first partial"),
    Param("damp", 0.0, 2.0, 0.5, "lin", "", "partial k decays (1 + damp (k-1)) times faster"),
)


def render(params: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Numpy surrogate: float64 ``[B, P]`` physical params -> float32 ``[B, n]``."""
    freq = params[:, 0:1]
    amps = params[:, 1 : 1 + N_PARTIALS]
    inharm, attack, decay, damp = (params[:, j : j + 1] for j in range(1 + N_PARTIALS, 5 + N_PARTIALS))
    k = np.arange(1, N_PARTIALS + 1, dtype=np.float64)[None, :]
    freqs = freq * k * np.sqrt(1.0 + inharm * k**2)
    amps = amps * (freqs < sr * 0.5)
    out = dsp.perc_sine_bank(freqs, amps, attack, decay / (1.0 + damp * (k - 1.0)), CURVE, n, sr)
    return (out * GAIN).astype(np.float32)


SPEC = SynthSpec("additive", PARAMS, render, "8 harmonic partials, inharmonicity, per-partial decay")
