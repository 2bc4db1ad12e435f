r"""``additive``: 24 harmonic partials, each with its own level, 24 more above them that continue their
spectrum's slope, stiffness-like inharmonicity, per-partial decay to a sustain level, a release, a coloured
noise floor with a burst at the onset, a sub-octave, vibrato and a chorus.

SynthDef (sc/synthenv_additive.scd)::

    k     = (1..48)
    vib   = SinOsc.kr(vrate, vphase, vdepth / 100).midiratio -- vibrato, per control block
    freqs = freq * k * (1 + (inharm * k.squared)).sqrt        -- stiff-string partials
    rel   = [a1, ..., a24] / [a1, ..., a24].reduce(\max)     -- levels relative to the loudest partial
    top   = exp(mean(log(rel[16..23])))                      -- the level of partials 17-24 (geometric mean)
    amps  = rel ++ (((24 / (25..48)) ** tail) * top)         -- partials 25-48 fall off from it as k^-tail
    amps  = amps * (freqs < (SampleRate.ir * 0.5))           -- partials above Nyquist are muted
    dk    = decay / (1 + (damp * (k - 1)))                   -- partial k's decay time
    envs  = EnvGen.ar(Env([0, 1, sustain, sustain, 0], [attack, dk, (hold - attack - dk).max(0), release], -4))
    envs  = envs * (envs > 1e-6)                             -- below -120 dB is silence
    burst = EnvGen.ar(Env([0, 1, 0], [0.001, bdecay], -4))     -- the onset's noise: a hammer, a pluck, a breath
    floor = OnePole.ar(Hasher.ar(Phasor.ar(0, 1, 0, 2 ** 24)), exp(-2pi ncutoff / SampleRate.ir))
            * ((noise * envs[0]) + (burst * bnoise))
    j     = (1..8)                                           -- a square an octave below: odd harmonics of f/2
    below = (SinOsc.ar(freq * (j - 0.5) * vib) * sub / (2 * j - 1)).sum * envs[0]
    dry   = (SinOsc.ar(freqs * vib) * amps * envs).sum + below + floor
    wet   = DelayL.ar(dry, 0.025, 0.001 + (cdepth * 0.0005 * (1 + SinOsc.ar(crate, [0, 2, 4] * pi / 3)))).sum / 3
    Out.ar(out, (dry + ((chorus - 0.001) / 0.999 * (wet - dry))) * 0.1)   -- a chorus: three copies on swept delays

Each partial's level ranges over 60 dB on a log scale (0.001 to 1), as real spectra do: a clarinet's
even partials sit 30-40 dB under its odd ones, an organ's 8th or 16th partial can be as loud as its
first. The levels are relative: the loudest partial plays at 1, so a patch is never near silence and
scaling every level together (which a loudness-normalised distance cannot hear) changes nothing. Above
partial 24, a low note's spectrum goes on: a trombone's or a cello's partials reach 8-10 kHz, 30-40
multiples of its pitch, 50-70 dB down. Partials 25-48 carry it on from the level of partials 17-24
(their geometric mean), falling as ``(24 / k) ** tail`` (``tail`` 0.5: nearly flat; 1: as the default
``1/k`` levels; 64: partial 25 already 23 dB down, little above it), one parameter instead of 24 more levels
to search.
``damp`` makes higher partials decay faster, as in plucked and struck instruments. With ``sustain = 0``
(the default) every partial dies away as ``Env.perc(attack, dk)``: a pluck or a strike. With
``sustain > 0`` each partial settles at that level after its decay and holds it until ``hold`` seconds,
then releases: the steady spectrum of an organ, a clarinet, a bowed or blown note, which a
percussive envelope cannot hold for a second.

``noise`` fills the valleys between the partials (breath, bow, room) that pure sines leave 60-90 dB
deep. It is the same ``Hasher`` noise as voice's, bit for bit in numpy (:func:`dsp.hash_noise`),
through a one-pole low-pass at ``ncutoff`` (unit gain at DC): a recording's floor is rarely white (a
bow's, a hammer's or a room's noise falls off above a kHz or two). ``bnoise`` plays the same noise in a
burst at the onset that dies in ``bdecay`` seconds, whatever the partials do: a piano's hammer, a
guitar's pluck, a bow's scrape or a flute's chiff, which a floor tied to the partials' envelope
cannot make loud at the start and quiet after it. ``sub`` adds a square wave an
octave below (the first 8 of its odd harmonics, at half-integer multiples of ``freq``), as an analog
synth's sub-oscillator or an organ's 16' stop does: a sound whose partials sit at every multiple of
half its heard pitch, which 24 partials of that pitch cannot make. ``vdepth`` cents of vibrato at
``vrate`` (3-9 Hz) move every frequency together, from ``vphase`` at the onset: a violin's, a singer's or
a wind player's 4-7 Hz of 5-30 cents, which moves a note's upper partials across the spectrogram's
bands and which a matching vibrato must meet in phase. ``chorus`` mixes in three copies of the sound
on delays of 1 ms plus up to ``cdepth`` ms, swept by sines of ``crate`` Hz a third of a cycle apart: a
swept delay moves every partial's frequency by the same ratio, so the copies beat and spread each partial
into a skirt that widens with the partial's number. That is what an ensemble, a room with a moving player,
a SoundFont player's or a synth's chorus does to a recording (fluidsynth's, up to 2.3, sweeps 3 voices at
0.3 Hz by 8 ms), and what a note's steady partials, with vibrato or without, cannot make: between the 6th and
the 15th partial of the benchmark's FluidR3 clarinet the valleys sit 20-30 dB above any floor that leaves
its partials standing. ``chorus`` is on a log scale from 0.001 (the default: no chorus, the mix
``(chorus - 0.001) / 0.999`` is 0) to 1 (the copies alone), so that a search or a random patch tries a
faint chorus as often as a strong one.

:func:`read_patch` reads a patch straight from a recording: each partial's level in its steady
spectrum at the pitch, the envelope from its loudness curve, the floor between the partials (level and
colour), the onset's burst from how far the floor of its first frames stands above that, the sub-octave
from the peaks halfway between them, the vibrato from the pitch's movement. A match renders it first
among its starts (:meth:`SynthSpec.read_start`), and then the same patch with each of two choruses
(:data:`READ_CHORUSES`), which the reader does not read.
"""

from __future__ import annotations

import math

import numpy as np

from synthenv.spec import Param, SynthSpec
from synthenv.synths import dsp

N_PARTIALS = 24
#: partials N_PARTIALS+1 .. N_ALL continue the spectrum at ``top * (N_PARTIALS / k) ** tail``
N_ALL = 48
#: the sub-octave square's partials: (k - 1/2) freq at sub / (2k - 1), k = 1..N_SUB
N_SUB = 8
BLOCK = dsp.BLOCK_SIZE
#: the readers' analysis hop (samples)
HOP = 256
#: the onset noise's rise (s)
BURST_ATTACK = 0.001
GAIN = 0.1
CURVE = -4.0
#: where a segment of CURVE from 1 to 0 is at a tenth, as a fraction of its time (0.537 for -4)
TENTH = math.log(0.1 * (1.0 - math.exp(CURVE)) + math.exp(CURVE)) / CURVE
#: the read patch is rendered again with each of these choruses (a slow deep one, a fast shallow one): the
#: reader does not read a chorus, and a search from a patch without one hardly tries it (at the least
#: ``chorus``, 0.001, there is none, and its depth and rate change nothing)
#: ``chorus`` at its least: no chorus (the mix is ``(chorus - CHORUS_OFF) / (1 - CHORUS_OFF)``)
CHORUS_OFF = 0.001
READ_CHORUSES = ({"chorus": 0.3, "cdepth": 8.0, "crate": 1.0}, {"chorus": 0.3, "cdepth": 3.0, "crate": 3.0})
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
    Param("noise", 0.0001, 0.3, 0.001, "exp", "", "noise floor: noise (low-passed at ncutoff) that follows partial 1's "
          "envelope (breath, bow, room); 0.3 white = RMS 12 dB below a partial of amplitude 1"),
    Param("ncutoff", 50.0, 10000.0, 10000.0, "exp", "Hz", "noise colour: the floor's one-pole low-pass cutoff (high: "
          "white; low: a dark rumble, as a bow's or a room's noise often is)"),
    Param("sub", 0.0001, 1.0, 0.0001, "exp", "", "sub-octave: a square wave an octave below (its first 8 odd "
          "harmonics, (k - 1/2) f, level sub/(2k-1)) that follows partial 1's envelope (an organ's 16' stop)"),
    Param("tail", 0.5, 64.0, 1.0, "exp", "", "partials 25-48: the geometric mean level of partials 17-24 times "
          "(24/k)^tail (0.5: nearly flat; 1: as 1/k; 64: partial 25 23 dB down, little above it)"),
    Param("bnoise", 0.0001, 3.0, 0.0001, "exp", "", "onset noise: the floor's noise (its colour) in a burst that "
          "peaks 1 ms in and dies in bdecay (a hammer, a pluck, a bow's or a breath's start)"),
    Param("bdecay", 0.005, 1.0, 0.05, "exp", "s", "the onset noise's decay time"),
    Param("vrate", 3.0, 9.0, 5.5, "lin", "Hz", "vibrato rate (sine LFO on every partial's frequency)"),
    Param("vdepth", 0.0, 50.0, 0.0, "lin", "cent", "vibrato depth (peak pitch deviation; 0: none)"),
    Param("vphase", 0.0, 2 * math.pi, 0.0, "lin", "rad", "vibrato phase at the onset (where its cycle starts)"),
    Param("chorus", CHORUS_OFF, 1.0, CHORUS_OFF, "exp", "", "chorus: three copies on swept delays (0.001: none; 1: "
          "the copies alone), the skirts an ensemble, a room or an effects unit spreads around each partial"),
    Param("cdepth", 0.5, 20.0, 4.0, "exp", "ms", "chorus depth: how far each copy's delay sweeps (above 1 ms)"),
    Param("crate", 0.1, 5.0, 0.5, "exp", "Hz", "chorus rate: how fast the delays sweep (a third of a cycle apart)"),
)


def _upper(rel: np.ndarray, k: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """The levels of partials ``k`` (above 24) for relative levels ``rel`` ``[..., 24]`` and slope ``tail``:
    the geometric mean of partials 17-24's levels times ``(24 / k) ** tail``."""
    top = np.exp(np.log(rel[..., N_PARTIALS - 8 :]).mean(axis=-1, keepdims=True))
    return top * (N_PARTIALS / k) ** tail


def render(params: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Numpy surrogate: float64 ``[B, P]`` physical params -> float32 ``[B, n]``."""
    p = {q.name: params[:, i : i + 1] for i, q in enumerate(PARAMS)}  # each [B, 1], by name
    freq, inharm, attack, decay, damp = (p[q] for q in ("freq", "inharm", "attack", "decay", "damp"))
    sustain, hold, release, noise, ncutoff = (p[q] for q in ("sustain", "hold", "release", "noise", "ncutoff"))
    sub, tail, bnoise, bdecay = (p[q] for q in ("sub", "tail", "bnoise", "bdecay"))
    vrate, vdepth, vphase, mix, cdepth, crate = (p[q][:, 0] for q in ("vrate", "vdepth", "vphase", "chorus", "cdepth",
                                                                       "crate"))  # fmt: skip
    levels = np.hstack([p[f"a{k}"] for k in range(1, N_PARTIALS + 1)])
    rel = levels / levels.max(axis=1, keepdims=True)  # the loudest partial plays at 1
    vib = dsp.midiratio(dsp.sine_kr(vrate, -(-n // BLOCK), sr, phase=vphase) * (vdepth[:, None] / 100.0))
    amps = np.concatenate([rel, _upper(rel, np.arange(N_PARTIALS + 1, N_ALL + 1)[None, :], tail)], axis=1)
    k = np.arange(1, N_ALL + 1, dtype=np.float64)[None, :]
    freqs = freq * k * np.sqrt(1.0 + inharm * k**2)
    amps = amps * (freqs < sr * 0.5)
    levels, times = dsp.timed_adsr(attack, decay / (1.0 + damp * (k - 1.0)), sustain, hold, release)  # [B, K, 5|4]
    out = dsp.adsr_sine_bank(freqs, amps, levels, times, CURVE, n, sr, gate=SILENT, ratio=vib)
    first = dsp.envelope(levels[:, 0], times[:, 0], CURVE, n, sr)
    first *= first > SILENT
    sounding = first.shape[1] - np.argmax(first[:, ::-1] > 0.0, axis=1) * (first.max(axis=1) > 0.0)  # its end
    j = np.arange(1, N_SUB + 1, dtype=np.float64)[None, :]  # the sub-octave: odd harmonics of freq / 2
    below = dsp.sine_sum(freq * (j - 0.5), sub / (2.0 * j - 1.0) * (freq * (j - 0.5) < sr * 0.5), n, sr, sounding, vib)
    # the synth lives until partial 1's envelope has run all its segments (doneAction 2 frees it at the end of
    # that control block): the burst plays until then, even where partial 1 is already silent
    life = np.maximum(1, (times[:, 0] * sr).astype(np.int64)).sum(axis=1)
    freed = -(-life // BLOCK) * BLOCK  # the sample the synth is freed at
    floor = dsp.one_pole(dsp.hash_noise(n), np.exp(-2.0 * np.pi * ncutoff[:, 0] / sr), freed)
    rise = np.full_like(bdecay, BURST_ATTACK)
    burst = dsp.envelope(np.broadcast_to([[0.0, 1.0, 0.0]], (len(params), 3)), np.hstack([rise, bdecay]), CURVE, n, sr)
    out += below * first + floor * (noise * first + bnoise * burst)
    mix = (mix - CHORUS_OFF) / (1.0 - CHORUS_OFF)  # the least chorus is none: the dry sound, bit for bit
    wet = mix > 0.0
    if wet.any():  # the chorus; its copies end where the synth is freed
        out[wet] += mix[wet, None] * (dsp.chorus(out[wet], cdepth[wet], crate[wet], sr) - out[wet])
        out[wet[:, None] & (np.arange(n)[None, :] >= freed[:, None])] = 0.0
    return (out * GAIN).astype(np.float32)


def read_patch(audio: np.ndarray, sr: int, f0: float | None) -> dict[str, float] | None:
    """A patch read from a recording at pitch ``f0`` (Hz; None: nothing to read): each partial's level, the
    loudest 1, in the spectrum of 0.15-0.85 s (a Hann window; the peak within 1.5% of the partial); attack
    the time to 90% of the loudness peak (RMS in 256-sample frames), sustain the median loudness of
    0.5-0.8 s over the peak, decay the time from the peak down to the sustain level (to 10% for a
    pluck, doubled as ``Env.perc``'s curve falls fast), hold the last time the loudness is above half
    the sustain level; ``inharm`` from where the partials of the first half second lie
    (:func:`_read_inharm`; the levels are read there); ``noise`` and ``ncutoff`` the spectrum between
    the partials as a low-passed noise's level and cutoff (:func:`_read_floor`); ``sub`` the peaks at
    ``(k - 1/2) f0`` fitted to the sub-octave square's ``1/(2k-1)``; ``tail`` the slope of partials 25-48
    (:func:`_read_tail`); ``bnoise`` and ``bdecay`` the onset's noise (:func:`_read_burst`, for a pitch in
    ``freq``'s range); ``vrate``, ``vdepth`` and ``vphase`` the vibrato (:func:`_read_vibrato`). None for a
    silent sound or one without a pitch."""
    if not f0:
        return None
    audio = np.asarray(audio, dtype=np.float64)
    hop = HOP
    rms = np.sqrt(np.convolve(audio**2, np.ones(hop) / hop, "same"))[::hop]
    t = np.arange(len(rms)) * hop / sr
    peak = rms.max()
    if peak <= 0:
        return None
    i_peak = int(np.argmax(rms))
    attack = float(np.clip(t[np.argmax(rms >= 0.9 * peak)], 0.001, 0.5))
    late = rms[(t > 0.5) & (t < 0.8)]
    sustain = float(np.clip(np.median(late) / peak if len(late) else 0.0, 0.0, 1.0))
    after = rms[i_peak:]
    below = np.nonzero(after <= peak * max(0.1, sustain + 0.1 * (1 - sustain)))[0]
    decay = float(np.clip(below[0] * hop / sr if len(below) else 2.0, 0.05, 2.0))
    hold = 1.0
    if sustain < 0.05:
        decay = float(np.clip(2.0 * decay, 0.05, 2.0))
    else:  # held: the release starts where the loudness falls under half the sustain level for good
        held = np.nonzero(rms >= 0.5 * sustain * peak)[0]
        hold = float(np.clip(t[held[-1]], 0.05, 1.0))
    S, hz, w = _spectrum(audio, sr, 0.15, 0.85)
    inharm = _read_inharm(*_spectrum(audio, sr, 0.02, 0.5)[:2], f0, sr)
    k = np.arange(1, N_PARTIALS + 1)
    amps = _peaks(S, hz, f0 * k * np.sqrt(1.0 + inharm * k**2), sr)
    loudest = amps.max()
    if loudest <= 0:
        return None
    noise, ncutoff = _read_floor(S, hz, f0, inharm, sr, (1 / np.sqrt(np.sum(w**2))) / (loudest / (w.sum() / 2)))
    # the sub-octave: the peaks at (j - 1/2) f0 fitted (least squares) to its square's 1/(2j-1)
    j = np.arange(1, N_SUB + 1)
    shape = 1.0 / (2.0 * j - 1.0) * ((j - 0.5) * f0 < sr / 2)
    sub = float(_peaks(S, hz, f0 * (j - 0.5), sr) @ shape / (shape @ shape)) / loudest
    amps = np.clip(amps / loudest, 0.001, 1.0)
    p = {f"a{i}": float(level) for i, level in enumerate(amps, start=1)}
    p = {**p, "freq": float(np.clip(f0, 55.0, 1760.0)), "inharm": inharm, "attack": attack, "decay": decay,
         "damp": 0.0, "sustain": sustain, "hold": hold, "release": 0.2,
         "noise": float(np.clip(noise, 0.0001, 0.3)), "ncutoff": ncutoff, "sub": float(np.clip(sub, 0.0001, 1.0)),
         "tail": _read_tail(S, hz, f0, inharm, sr, loudest, amps), **_read_vibrato(audio, sr, f0, inharm)}
    return {**p, **(_read_burst(audio, sr, p) if p["freq"] == f0 else {})}  # the render is at the clipped pitch


def _spectrum(audio: np.ndarray, sr: int, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The magnitude spectrum of ``audio`` from ``t0`` to ``t1`` s (all of it if shorter), Hann-windowed:
    ``(S, its bins' Hz, the window)``."""
    a, b = int(t0 * sr), int(t1 * sr)
    seg = audio[a:b] if len(audio) > b else audio
    w = np.hanning(len(seg))
    return np.abs(np.fft.rfft(seg * w)), np.fft.rfftfreq(len(seg), 1 / sr), w


def _peaks(S: np.ndarray, hz: np.ndarray, freqs: np.ndarray, sr: int, width: float = 0.015) -> np.ndarray:
    """The spectrum's peak within ``width`` (relative) of each of ``freqs`` (0 at or above Nyquist)."""
    return np.array([S[(hz > f * (1 - width)) & (hz < f * (1 + width))].max(initial=0.0) if f < sr / 2 else 0.0
                     for f in freqs])  # fmt: skip


def _read_inharm(S: np.ndarray, hz: np.ndarray, f0: float, sr: int) -> float:
    """The stiffness ``B`` (0, or one of 31 values from 1e-5 to 1e-2 on a log scale) whose partials
    ``k f0 sqrt(1 + B k^2)`` hold the most of spectrum ``S`` (their peaks within 1%): a piano's or a
    bell's stretched partials, which a harmonic reading misses above the first few."""
    k = np.arange(1, N_PARTIALS + 1)
    grid = np.concatenate([[0.0], np.geomspace(1e-5, 1e-2, 31)])
    held = [_peaks(S, hz, f0 * k * np.sqrt(1.0 + b * k**2), sr, 0.01).sum() for b in grid]
    return float(grid[int(np.argmax(held))])


#: the vibrato reader's rates (Hz): vrate's range in steps of 0.02
VIB_RATES = np.arange(3.0, 9.0 + 1e-9, 0.02)


def _read_vibrato(audio: np.ndarray, sr: int, f0: float, inharm: float) -> dict[str, float]:
    """``vrate``, ``vdepth`` and ``vphase`` from the pitch's movement in 0.1-0.9 s: in each frame (a power
    of two near 46 ms, Hann, hop :data:`HOP`) the frequency of each of the first 11 partials below 5 kHz
    (its peak within 4%, 68 cents, where a neighbour's is not; refined by a parabola through the log
    magnitudes), their mean over ``k`` weighted by magnitude, in cents from the median; then the
    sine of :data:`VIB_RATES` that, with a straight line (a drift), fits it best (least squares), its depth
    corrected for the frames' length. A vibrato when that sine explains more than 40% of what the line
    leaves and is at least 3 cents deep; else none (``vdepth`` 0), and none for a pitch whose partials lie
    closer than four of the frame's bins (below 86 Hz at 22050 Hz: their peaks run together). The phase is
    the sine's at the recording's start, plus the half control block by which the synth's held values lag
    it."""
    none = {"vrate": 5.5, "vdepth": 0.0, "vphase": 0.0}
    size = 1 << int(np.round(np.log2(0.046 * sr)))
    bin_hz = sr / size
    a, b = int(0.1 * sr), min(len(audio), int(0.9 * sr))
    if b - a < size + 8 * HOP or f0 < 4 * bin_hz:
        return none
    frames = np.lib.stride_tricks.sliding_window_view(audio[a:b], size)[::HOP] * np.hanning(size)
    S = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-12)
    k = np.arange(1, 12)  # within 4% of partial k, its neighbours (1/k away) stay out up to the 11th
    fk = f0 * k * np.sqrt(1.0 + inharm * k**2)
    rows = np.arange(len(S))
    pitch, weight = np.zeros(len(S)), np.zeros(len(S))
    for f in fk[fk < min(5000.0, 0.45 * sr)]:
        lo, hi = max(1, int(f * 0.96 / bin_hz)), min(S.shape[1] - 2, int(np.ceil(f * 1.04 / bin_hz)))
        if hi <= lo:
            continue
        i = lo + np.argmax(S[:, lo : hi + 1], axis=1)
        y0, y1, y2 = S[rows, i - 1], S[rows, i], S[rows, i + 1]
        den = y0 - 2 * y1 + y2
        shift = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
        w = np.exp(y1)
        pitch += w * (i + np.clip(shift, -0.5, 0.5)) * bin_hz / f
        weight += w
    if not (weight > 0).all():
        return none
    cents = 1200 * np.log2(pitch / weight / np.median(pitch / weight))
    t = (a + rows * HOP + size / 2) / sr
    line = np.stack([np.ones_like(t), t - t.mean()], axis=1)
    drift = cents - line @ np.linalg.lstsq(line, cents, rcond=None)[0]
    total = float(drift @ drift)
    if total <= 0:
        return none
    best = (0.0, 0.0, 0.0, 0.0)
    for rate in VIB_RATES:
        M = np.hstack([np.stack([np.sin(2 * np.pi * rate * t), np.cos(2 * np.pi * rate * t)], axis=1), line])
        coef = np.linalg.lstsq(M, cents, rcond=None)[0]
        explained = 1.0 - float(np.sum((cents - M @ coef) ** 2)) / total
        if explained > best[0]:
            best = (explained, float(rate), float(np.hypot(coef[0], coef[1])), float(np.arctan2(coef[1], coef[0])))
    explained, rate, depth, phase = best
    span = rate * size / sr  # the frame's length in cycles of the vibrato: its Hann mean lowers the depth
    depth /= np.sinc(span) / (1.0 - span**2)
    if explained < 0.4 or depth < 3.0:
        return none
    # the synth holds each control block's value for the block: the sine it makes lags by half a block
    phase += 2 * np.pi * rate * BLOCK / 2 / sr
    return {"vrate": rate, "vdepth": float(min(depth, 50.0)), "vphase": float(phase % (2 * np.pi))}


def _read_tail(S: np.ndarray, hz: np.ndarray, f0: float, inharm: float, sr: int, loudest: float,
               levels: np.ndarray) -> float:  # fmt: skip
    """``tail``: of 43 values from 0.5 to 64 (log-spaced), the one whose partials 25-48 (the geometric mean
    of ``levels`` 17-24 times ``(24 / k) ** tail``) lie closest in dB to the spectrum's peaks there (within
    0.6% of each: its own width, not its neighbour's; relative to ``loudest``), both floored 80 dB down as
    a listener's range is; 1 (the default) for a pitch with none below Nyquist. A recording low-passed
    just above partial 24 reads as a steep tail, not as the average slope of its floor."""
    k = np.arange(N_PARTIALS + 1, N_ALL + 1)
    heard = k * f0 * np.sqrt(1.0 + inharm * k**2)
    k = k[heard < sr / 2]
    if not len(k):
        return 1.0
    floor = 1e-4  # 80 dB down
    peaks = np.log(np.maximum(_peaks(S, hz, heard[: len(k)], sr, 0.006) / loudest, floor))
    grid = np.geomspace(0.5, 64.0, 43)
    model = np.log(np.maximum(_upper(levels[None, :], k[None, :], grid[:, None]), floor))
    return float(grid[int(np.argmin(np.abs(model - peaks).mean(axis=1)))])


def _between(hz: np.ndarray, f0: float, inharm: float, sr: int, margin: float) -> np.ndarray:
    """Which of the bins at ``hz`` lie between the partials of ``f0`` (with stiffness ``inharm``): more than
    ``margin`` times ``f0`` from every partial below Nyquist, and above half of ``f0``."""
    k = np.arange(1, int(sr / 2 / f0) + 2)
    nearest = np.abs(hz[:, None] - (f0 * k * np.sqrt(1.0 + inharm * k**2))[None, :]).min(axis=1)
    return (nearest > margin * f0) & (hz > 0.5 * f0)


def _valleys(audio: np.ndarray, sr: int, f0: float, inharm: float) -> tuple[np.ndarray, np.ndarray]:
    """The level between the partials of ``f0`` (with stiffness ``inharm``) in each frame of ``audio``'s first
    0.5 s, and the frame's peak: the median magnitude of the bins more than a quarter of ``f0`` from every
    partial, above half of it, and the largest (Hann frames of 1024 samples, hop 256)."""
    size, hop = 1024, HOP
    seg = np.pad(audio[: int(0.5 * sr)], (size // 2, size // 2))
    frames = np.lib.stride_tricks.sliding_window_view(seg, size)[::hop] * np.hanning(size)
    S = np.abs(np.fft.rfft(frames, axis=1))
    hz = np.fft.rfftfreq(size, 1 / sr)
    between = _between(hz, f0, inharm, sr, 0.25)
    return (np.median(S[:, between], axis=1) if between.any() else np.zeros(len(S))), S.max(axis=1)


def _read_burst(audio: np.ndarray, sr: int, patch: dict[str, float]) -> dict[str, float]:
    """``bnoise`` and ``bdecay`` for ``patch`` (read without them) from ``audio``: in the first 0.5 s, how far
    the level between the partials stands over the frame's peak (:func:`_valleys`) beyond what the patch
    itself puts there (the power difference, so that the floor and an onset's spectral splash, which the
    patch makes too, do not count). Where that excess peaks in the first 0.1 s at more than twice the patch's
    own level there, ``bdecay`` is the time it takes to fall to a tenth (over :data:`TENTH`, where the
    envelope's curve is at a tenth) and ``bnoise`` the level of a burst of that decay that peaks as high (measured the
    same way, on the burst alone); else none. What the patch's onset lacks reads as a burst: a pluck's upper partials,
    loud at first and gone by the window the levels are read in (``damp``, which is not read), too."""
    off = {"bnoise": 0.0001, "bdecay": 0.05}
    n = min(len(audio), sr)
    plain = render(SPEC.from_dicts({**patch, **off}), sr, n)[0].astype(np.float64)
    f0, inharm = patch["freq"], patch["inharm"]
    (target, t_peak), (own, o_peak) = _valleys(audio[:n], sr, f0, inharm), _valleys(plain, sr, f0, inharm)
    t_rel, o_rel = target / np.maximum(t_peak, 1e-30), own / np.maximum(o_peak, 1e-30)
    excess = np.sqrt(np.maximum(t_rel**2 - o_rel**2, 0.0))
    i = int(np.argmax(excess[: int(0.1 * sr / HOP) + 1]))
    if excess[i] <= 2.0 * o_rel[i]:
        return off
    fallen = np.nonzero(excess[i:] < 0.1 * excess[i])[0]
    bdecay = float(np.clip((fallen[0] if len(fallen) else len(excess) - i) * HOP / sr / TENTH, 0.005, 1.0))
    unit = render(SPEC.from_dicts({**patch, "bnoise": 1.0, "bdecay": bdecay}), sr, n)[0].astype(np.float64)
    alone = _valleys(unit - plain, sr, f0, inharm)[0]  # the burst alone, at bnoise 1
    level = float((alone / np.maximum(o_peak, 1e-30)).max())
    return {"bnoise": float(np.clip(excess[i] / level if level > 0 else 0.0, 0.0001, 3.0)), "bdecay": bdecay}


def _read_floor(S: np.ndarray, hz: np.ndarray, f0: float, inharm: float, sr: int,
                to_level: float) -> tuple[float, float]:  # fmt: skip
    """The noise floor of magnitude spectrum ``S`` (bins at ``hz``) between the partials of ``f0`` (with
    stiffness ``inharm``): its median in 12 log-spaced bands from half the pitch to Nyquist, fitted (log
    least squares) by the response of the one-pole low-pass of one of 40 cutoffs (50 Hz-10 kHz) and a
    level. Returns ``noise`` (``to_level`` turns a bin's magnitude into a partial-relative amplitude) and
    ``ncutoff``."""
    between = _between(hz, f0, inharm, sr, 0.2)
    edges = np.geomspace(max(40.0, f0 / 2), sr / 2, 13)
    centre, floor = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        band = between & (hz >= lo) & (hz < hi)
        if band.sum() >= 3:
            centre.append(np.sqrt(lo * hi))
            floor.append(np.median(S[band]))
    centre, floor = np.array(centre), np.array(floor) * to_level / np.sqrt(1 / 3)
    if not len(floor) or floor.max() <= 0:
        return 0.0, 10000.0
    cutoffs = np.geomspace(50.0, 10000.0, 40)
    c = np.exp(-2.0 * np.pi * cutoffs / sr)[:, None]
    response = (1 - c) / np.abs(1 - c * np.exp(-2j * np.pi * centre[None, :] / sr))  # [40, bands]
    log_ratio = np.log(np.maximum(floor, 1e-12))[None, :] - np.log(response)
    level = np.median(log_ratio, axis=1)
    best = int(np.argmin(np.mean((log_ratio - level[:, None]) ** 2, axis=1)))
    return float(np.exp(level[best])), float(cutoffs[best])


SPEC = SynthSpec(
    "additive", PARAMS, render,
    "24 harmonic partials and 24 more on a slope, inharmonicity, per-partial decay to a sustain, coloured noise "
    "floor with an onset burst, sub-octave, vibrato, chorus",
    reader=read_patch,
    read_variants=READ_CHORUSES,
)
