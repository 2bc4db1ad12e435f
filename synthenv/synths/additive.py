r"""``additive``: 24 harmonic partials, each with its own level, stiffness-like inharmonicity, per-partial
decay to a sustain level, a release, and a noise floor.

SynthDef (sc/synthenv_additive.scd)::

    k     = (1..24)
    freqs = freq * k * (1 + (inharm * k.squared)).sqrt        -- stiff-string partials
    amps  = [a1, ..., a24] / [a1, ..., a24].reduce(\max)     -- levels relative to the loudest partial
    amps  = amps * (freqs < (SampleRate.ir * 0.5))           -- partials above Nyquist are muted
    dk    = decay / (1 + (damp * (k - 1)))                   -- partial k's decay time
    envs  = EnvGen.ar(Env([0, 1, sustain, sustain, 0], [attack, dk, (hold - attack - dk).max(0), release], -4))
    envs  = envs * (envs > 1e-6)                             -- below -120 dB is silence
    floor = Hasher.ar(Phasor.ar(0, 1, 0, 2 ** 24)) * noise * envs[0]
    Out.ar(out, ((SinOsc.ar(freqs) * amps * envs).sum + floor) * 0.1)

Each partial's level ranges over 60 dB on a log scale (0.001 to 1), as real spectra do: a clarinet's
even partials sit 30-40 dB under its odd ones, an organ's 8th or 16th partial can be as loud as its
first. The levels are relative: the loudest partial plays at 1, so a patch is never near silence and
scaling every level together (which a loudness-normalised distance cannot hear) changes nothing.
``damp`` makes higher partials decay faster, as in plucked and struck instruments. With ``sustain = 0``
(the default) every partial dies away as ``Env.perc(attack, dk)``: a pluck or a strike. With
``sustain > 0`` each partial settles at that level after its decay and holds it until ``hold`` seconds,
then releases: the steady spectrum of an organ, a clarinet, a bowed or blown note, which a
percussive envelope cannot hold for a second. ``noise`` fills the valleys between the partials (breath,
bow, room) that pure sines leave 60-90 dB deep; it is the same ``Hasher`` noise as voice's, bit for bit
in numpy (:func:`dsp.hash_noise`).

:func:`read_patch` reads a patch straight from a recording: each partial's level in its steady
spectrum at the pitch, the envelope from its loudness curve, the floor between the partials. A match
renders it first among its starts (:meth:`SynthSpec.read_start`).
"""

from __future__ import annotations

import numpy as np

from synthenv.spec import Param, SynthSpec
from synthenv.synths import dsp

N_PARTIALS = 24
GAIN = 0.1
CURVE = -4.0
#: envelope levels at or below this count as silent (-120 dB): EnvGen ends a segment at 0 with a residue
#: (~1e-32) that a held or released 0 keeps, and whose power underflows scsynth's SpecFlatness
SILENT = 1e-6

PARAMS = (
    Param("freq", 55.0, 1760.0, 220.0, "exp", "Hz", "fundamental frequency (pitch)"),
    *(
        Param(f"a{k}", 0.001, 1.0, round(1.0 / k, 4), "exp", "", f"level of partial {k} (relative to the loudest)")
        for k in range(1, N_PARTIALS + 1)
    ),
    Param("inharm", 0.0, 0.01, 0.0, "lin", "", "inharmonicity B: f_k = k f sqrt(1 + B k^2)"),
    Param("attack", 0.001, 0.5, 0.01, "exp", "s", "attack time"),
    Param("decay", 0.05, 2.0, 0.8, "exp", "s", "decay time of the first partial"),
    Param("damp", 0.0, 2.0, 0.5, "lin", "", "partial k decays (1 + damp (k-1)) times faster"),
    Param("sustain", 0.0, 1.0, 0.0, "lin", "", "level each partial decays to and holds (0: plucked/struck, >0: "
          "bowed, blown, organ)"),
    Param("hold", 0.05, 1.0, 0.6, "lin", "s", "note length: the release starts here (after a partial's decay)"),
    Param("release", 0.01, 1.0, 0.2, "exp", "s", "release time from the sustain level"),
    Param("noise", 0.0001, 0.3, 0.001, "exp", "", "noise floor: white noise that follows partial 1's envelope (breath, "
          "bow, room); 0.3 = RMS 12 dB below a partial of amplitude 1"),
)


def render(params: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Numpy surrogate: float64 ``[B, P]`` physical params -> float32 ``[B, n]``."""
    freq = params[:, 0:1]
    levels = params[:, 1 : 1 + N_PARTIALS]
    amps = levels / levels.max(axis=1, keepdims=True)  # the loudest partial plays at 1
    inharm, attack, decay, damp, sustain, hold, release, noise = (
        params[:, j : j + 1] for j in range(1 + N_PARTIALS, 9 + N_PARTIALS)
    )
    k = np.arange(1, N_PARTIALS + 1, dtype=np.float64)[None, :]
    freqs = freq * k * np.sqrt(1.0 + inharm * k**2)
    amps = amps * (freqs < sr * 0.5)
    levels, times = dsp.timed_adsr(attack, decay / (1.0 + damp * (k - 1.0)), sustain, hold, release)  # [B, K, 5|4]
    out = dsp.adsr_sine_bank(freqs, amps, levels, times, CURVE, n, sr, gate=SILENT)
    first = dsp.envelope(levels[:, 0], times[:, 0], CURVE, n, sr)
    out += dsp.hash_noise(n)[None, :] * noise * (first * (first > SILENT))
    return (out * GAIN).astype(np.float32)


def read_patch(audio: np.ndarray, sr: int, f0: float | None) -> dict[str, float] | None:
    """A patch read from a recording at pitch ``f0`` (Hz; None: nothing to read): each partial's level, the
    loudest 1, in the spectrum of 0.15-0.85 s (a Hann window; the peak within 1.5% of ``k f0``); attack
    the time to 90% of the loudness peak (RMS in 256-sample frames), sustain the median loudness of
    0.5-0.8 s over the peak, decay the time from the peak down to the sustain level (to 10% for a
    pluck, doubled as ``Env.perc``'s curve falls fast), hold the last time the loudness is above half
    the sustain level; ``noise`` the median spectrum between the partials as white noise's level.
    None for a silent sound or one without a pitch."""
    if not f0:
        return None
    audio = np.asarray(audio, dtype=np.float64)
    hop = 256
    rms = np.sqrt(np.convolve(audio**2, np.ones(hop) / hop, "same"))[::hop]
    t = np.arange(len(rms)) * hop / sr
    peak = rms.max()
    if peak <= 0:
        return None
    i_peak = int(np.argmax(rms))
    attack = float(np.clip(t[np.argmax(rms >= 0.9 * peak)], 0.001, 0.5))
    late = rms[(t > 0.5) & (t < 0.8)]
    sustain = float(np.clip(np.median(late) / peak if len(late) else 0.0, 0.0, 1.0))
    tail = rms[i_peak:]
    below = np.nonzero(tail <= peak * max(0.1, sustain + 0.1 * (1 - sustain)))[0]
    decay = float(np.clip(below[0] * hop / sr if len(below) else 2.0, 0.05, 2.0))
    hold = 1.0
    if sustain < 0.05:
        decay = float(np.clip(2.0 * decay, 0.05, 2.0))
    else:  # held: the release starts where the loudness falls under half the sustain level for good
        held = np.nonzero(rms >= 0.5 * sustain * peak)[0]
        hold = float(np.clip(t[held[-1]], 0.05, 1.0))
    a, b = int(0.15 * sr), int(0.85 * sr)
    seg = audio[a:b] if len(audio) > b else audio
    w = np.hanning(len(seg))
    S = np.abs(np.fft.rfft(seg * w))
    hz = np.fft.rfftfreq(len(seg), 1 / sr)
    amps = np.array([S[(hz > k * f0 * 0.985) & (hz < k * f0 * 1.015)].max(initial=0.0) if k * f0 < sr / 2 else 0.0
                     for k in range(1, N_PARTIALS + 1)])
    if amps.max() <= 0:
        return None
    # the floor between the partials: median bin below 24 partials, away from them, as white noise's level
    k_of_bin = hz / f0
    between = (np.abs(k_of_bin - np.round(k_of_bin)) > 0.2) & (k_of_bin > 0.5) & (k_of_bin < N_PARTIALS + 0.5)
    floor = np.median(S[between]) if between.any() else 0.0
    noise = (floor / np.sqrt(np.sum(w**2))) / (amps.max() / (w.sum() / 2)) / np.sqrt(1 / 3)
    amps = np.clip(amps / amps.max(), 0.001, 1.0)
    p = {f"a{k}": float(amps[k - 1]) for k in range(1, N_PARTIALS + 1)}
    return {**p, "freq": float(np.clip(f0, 55.0, 1760.0)), "inharm": 0.0, "attack": attack, "decay": decay,
            "damp": 0.0, "sustain": sustain, "hold": hold, "release": 0.2,
            "noise": float(np.clip(noise, 0.0001, 0.3))}


SPEC = SynthSpec(
    "additive", PARAMS, render, "24 harmonic partials, inharmonicity, per-partial decay to a sustain, noise floor",
    reader=read_patch,
)
