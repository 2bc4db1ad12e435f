"""``voice``: the classic analog voice of sound-matching research, with a body resonance.

Two detuned saw/pulse oscillators and a noise source (breath, bow, hammer) through a resonant
low-pass with its own envelope and key tracking, a peaking "body" filter for the formant hump a
low-pass alone cannot make, a timed ADSR, vibrato and a short attack pitch envelope.

SynthDef (sc/synthenv_voice.scd)::

    shape  = Env([0, 1, sustain, sustain, 0], [attack, decay, (hold - attack - decay).max(0), release], -4)
    env    = EnvGen.ar(shape, doneAction: 2);  fenv_kr = EnvGen.kr(shape)
    pitch  = EnvGen.kr(Env([pitchenv, 0], [pdecay], -4)) + SinOsc.kr(vrate, 0, vdepth / 100)   -- semitones
    f1     = freq * pitch.midiratio;  f2 = f1 * (detune / 100).midiratio                       -- per block
    mix    = (wave * 2).min(1);  width = 0.5 - ((wave - 0.5).max(0) * 0.8)
    osc(f) = Saw.ar(f) * (1 - mix) + Pulse.ar(f, width) * mix
    breath = Hasher.ar(Phasor.ar(0, 1, 0, 2 ** 24)) * EnvGen.ar(Env([1, 0], [ndecay], -4)) * noise
    cut    = (cutoff * (freq / 220) ** keytrack * 2 ** (fenv * fenv_kr)).clip(20, SampleRate.ir * 0.45)
    sig    = BPeakEQ.ar(RLPF.ar(osc(f1) + osc(f2) * osc2 + breath, cut, rq), bfreq, brq, bgain)
    Out.ar(out, sig * env * GAIN)

Saw and Pulse read their frequency once per control block, so vibrato and the pitch envelope are
control-rate signals and the surrogate follows them block by block (:func:`dsp.saw_pulse`,
including scsynth's kernel crossfade when the number of harmonics changes). The noise is SC's
``Hasher`` of a sample counter: the same samples in scsynth and numpy, bit for bit
(:func:`dsp.hash_noise`), unlike ``WhiteNoise``, whose seed is the server's.

Ranges follow real instruments: vibrato 4-7 Hz up to 50 cents (singers and strings: 5-7 Hz,
20-50 cents; winds shallower); body and formant peaks 200 Hz-4 kHz (a violin's or cello's main
body modes, a trumpet's 1-1.5 kHz hump, vowel formants F1-F3); attacks from 1 ms (plucked, struck)
to 0.5 s (bowed, bowed swells); noise up to 6 dB below one oscillator.
"""

from __future__ import annotations

import numpy as np

from synthenv.spec import Param, SynthSpec
from synthenv.synths import dsp

GAIN = 0.2
CURVE = -4.0
KEY_REFERENCE = 220.0  # Hz: the pitch at which ``cutoff`` is the cutoff, whatever ``keytrack``

PARAMS = (
    Param("freq", 55.0, 1760.0, 220.0, "exp", "Hz", "pitch of oscillator 1"),
    Param("detune", 0.0, 50.0, 7.0, "lin", "cent", "oscillator 2 sits this far above oscillator 1 (beating, ensemble)"),
    Param("wave", 0.0, 1.0, 0.0, "lin", "", "waveform: 0 saw, 0.5 square (saw-square crossfade), 1 pulse of width 0.1"),
    Param("osc2", 0.0, 1.0, 0.5, "lin", "", "oscillator 2 level relative to oscillator 1"),
    Param("noise", 0.0, 0.25, 0.02, "lin", "", "noise amplitude before the filter; 0.25 = RMS 6 dB below one saw"),
    Param("ndecay", 0.01, 10.0, 0.1, "exp", "s", "noise envelope: 1 to 0 in this time (hammer .01, bow .2, breath 2+)"),
    Param("cutoff", 80.0, 8000.0, 2000.0, "exp", "Hz", "low-pass cutoff at a pitch of 220 Hz"),
    Param("rq", 0.05, 1.0, 0.5, "exp", "", "low-pass reciprocal Q (lower = more resonance)"),
    Param("fenv", 0.0, 4.0, 1.0, "lin", "oct", "filter envelope amount: the ADSR raises the cutoff this many octaves"),
    Param("keytrack", 0.0, 1.0, 0.5, "lin", "", "cutoff follows pitch: cutoff * (freq / 220) ** keytrack"),
    Param("attack", 0.001, 0.5, 0.01, "exp", "s", "ADSR attack (1 ms struck/plucked .. 0.5 s bowed swell)"),
    Param("decay", 0.01, 1.0, 0.2, "exp", "s", "ADSR decay"),
    Param("sustain", 0.0, 1.0, 0.7, "lin", "", "ADSR sustain level"),
    Param("hold", 0.05, 1.0, 0.6, "lin", "s", "note length: the release starts here"),
    Param("release", 0.01, 1.0, 0.2, "exp", "s", "ADSR release"),
    Param("vrate", 4.0, 7.0, 5.5, "lin", "Hz", "vibrato rate (sine LFO on pitch)"),
    Param("vdepth", 0.0, 50.0, 10.0, "lin", "cent", "vibrato depth (peak pitch deviation)"),
    Param("pitchenv", -12.0, 12.0, 0.0, "lin", "st", "attack pitch offset, decaying to 0 (< 0 scoop up, > 0 fall)"),
    Param("pdecay", 0.005, 0.5, 0.05, "exp", "s", "pitch envelope decay time"),
    Param("bfreq", 200.0, 4000.0, 1000.0, "exp", "Hz", "body/formant peak centre frequency"),
    Param("brq", 0.1, 2.0, 0.5, "exp", "", "body peak bandwidth / centre frequency"),
    Param("bgain", 0.0, 18.0, 6.0, "lin", "dB", "body peak gain"),
)

_I = {p.name: i for i, p in enumerate(PARAMS)}


def adsr_segments(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levels ``[B, 5]`` and times ``[B, 4]`` of the timed ADSR (:func:`dsp.timed_adsr`, as subtractive's)."""
    return dsp.timed_adsr(*(params[:, _I[k]] for k in ("attack", "decay", "sustain", "hold", "release")))


def render(params: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Numpy surrogate: float64 ``[B, P]`` physical params -> float32 ``[B, n]``."""
    p = {name: params[:, i] for name, i in _I.items()}
    b = params.shape[0]
    block = dsp.BLOCK_SIZE
    n_blocks = -(-n // block)
    kr = sr / block

    # pitch, per control block (semitones): the attack pitch envelope plus vibrato
    penv = dsp.envelope(np.stack([p["pitchenv"], np.zeros(b)], 1), p["pdecay"][:, None], CURVE, n_blocks, kr)
    vib = dsp.sine_kr(p["vrate"], n_blocks, sr) * (p["vdepth"][:, None] / 100.0)
    f1 = p["freq"][:, None] * dsp.midiratio(penv + vib)
    f1_init = p["freq"] * dsp.midiratio(p["pitchenv"])  # the constructors' values: EnvGen at its first level, sin(0)
    ratio2 = dsp.midiratio(p["detune"] / 100.0)
    mix = np.minimum(p["wave"] * 2.0, 1.0)
    width = 0.5 - np.maximum(p["wave"] - 0.5, 0.0) * 0.8
    sig = dsp.saw_pulse(f1, mix, width, n, sr, f1_init)
    sig += dsp.saw_pulse(f1 * ratio2[:, None], mix, width, n, sr, f1_init * ratio2) * p["osc2"][:, None]

    noise_env = dsp.envelope(np.tile([1.0, 0.0], (b, 1)), p["ndecay"][:, None], CURVE, n, sr)
    sig += dsp.hash_noise(n)[None, :] * noise_env * p["noise"][:, None]

    levels, times = adsr_segments(params)
    fenv_kr = dsp.envelope(levels, times, CURVE, n_blocks, kr)
    track = (p["freq"] / KEY_REFERENCE) ** p["keytrack"]
    cut = np.clip((p["cutoff"] * track)[:, None] * np.exp2(p["fenv"][:, None] * fenv_kr), 20.0, sr * 0.45)
    # The filters' constructors each filter one sample, the constructor output of their input, and keep
    # the state: Saw's first sample (limit of the kernel at phase 0: 1 - 0.999·0.46), Pulse's 0, and the
    # noise's hash of 0.0 at the noise envelope's first level; the cutoff at the filter envelope's level 0.
    x_ctor = (1.0 + 0.999 * -0.46) * (1.0 - mix) * (1.0 + p["osc2"]) + float(dsp.hash_noise(1)[0]) * p["noise"]
    cut_ctor = np.clip(p["cutoff"] * track, 20.0, sr * 0.45)
    rlpf_ctor = dsp.rlpf(x_ctor[:, None], cut_ctor[:, None], p["rq"], sr)[:, 0]
    sig = dsp.rlpf(sig, cut, p["rq"], sr, cutoff_init=cut_ctor, x_init=x_ctor)
    sig = dsp.bpeakeq(sig, np.repeat(p["bfreq"][:, None], n_blocks, 1), p["brq"], p["bgain"], sr, x_init=rlpf_ctor)
    env = dsp.envelope(levels, times, CURVE, n, sr)
    return (sig * env * GAIN).astype(np.float32)


SPEC = SynthSpec(
    "voice",
    PARAMS,
    render,
    "2 detuned saw/pulse oscillators + noise -> resonant low-pass (envelope, key tracking) -> body peak; "
    "ADSR, vibrato, pitch envelope",
)
