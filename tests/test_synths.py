"""Surrogate DSP sanity, measured on the audio."""

import numpy as np
import pytest
from conftest import needs_scsynth

from synthenv import get_synth, render
from synthenv.synths import additive, dsp

SR = 22050


def peak_hz(audio: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.argmax(spec) * sr / audio.size)


def test_fm_with_index_zero_is_a_sine_at_freq():
    audio = render("fm", {"freq": 440.0, "index": 0.0, "decay": 2.0})
    assert audio.shape == (SR,) and audio.dtype == np.float32
    assert peak_hz(audio) == pytest.approx(440.0, abs=1.5)
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    harmonic = spec[int(880 * audio.size / SR) - 3 : int(880 * audio.size / SR) + 4].max()
    assert harmonic < 1e-3 * spec.max()  # no sidebands without modulation


def test_fm_sidebands_appear_at_carrier_plus_minus_modulator():
    audio = render("fm", {"freq": 400.0, "ratio": 0.25, "index": 1.0, "decay": 2.0})
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    hz = np.fft.rfftfreq(audio.size, 1 / SR)
    for f in (300.0, 500.0):  # carrier ± 100 Hz
        band = spec[(hz > f - 5) & (hz < f + 5)].max()
        assert band > 0.1 * spec.max()


@pytest.mark.parametrize("name", ["fm", "subtractive", "additive"])
def test_defaults_render_finite_nonsilent_float32(name):
    audio = render(name, {})
    assert audio.dtype == np.float32 and audio.shape == (SR,)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01
    assert np.abs(audio).max() <= 1.0


@pytest.mark.parametrize("name", ["fm", "subtractive", "additive"])
def test_batch_equals_single_renders(name):
    spec = get_synth(name)
    rows = [spec.to_dict(spec.denormalize(x)) for x in np.random.default_rng(1).random((3, spec.n_params))]
    batch = render(name, rows)
    assert batch.shape == (3, SR)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(batch[i], render(name, row), atol=1e-6)


def test_subtractive_pitch_and_brightness_follow_params():
    import librosa

    audio = render("subtractive", {"freq": 220.0})
    f0, voiced, _ = librosa.pyin(audio, fmin=60, fmax=1000, sr=SR)
    assert np.nanmedian(f0[voiced]) == pytest.approx(220.0, rel=0.02)
    dark = render("subtractive", {"freq": 220.0, "cutoff": 200.0, "fenv": 0.0})
    bright = render("subtractive", {"freq": 220.0, "cutoff": 6000.0, "fenv": 0.0})
    centroid = [float(librosa.feature.spectral_centroid(y=a, sr=SR).mean()) for a in (dark, bright)]
    assert centroid[1] > 3 * centroid[0]


def test_additive_partials_and_inharmonicity():
    amps = {f"a{k}": 0.001 for k in range(1, 25)}  # 60 dB down: the lowest level
    audio = render("additive", {**amps, "freq": 200.0, "a3": 1.0, "decay": 2.0})
    assert peak_hz(audio) == pytest.approx(600.0, abs=2.0)
    stiff = render("additive", {**amps, "freq": 200.0, "a8": 1.0, "inharm": 0.01, "decay": 2.0})
    assert peak_hz(stiff) == pytest.approx(1600 * np.sqrt(1 + 0.01 * 64), abs=3.0)


def test_additive_sustain_holds_the_spectrum_until_the_release():
    """sustain 0 is a pluck (Env.perc, as before sustain existed); sustain > 0 holds each partial at that
    level until ``hold``, then releases to silence within ``release``."""
    base = {"freq": 220.0, "attack": 0.005, "decay": 0.1, "damp": 0.0}

    def rms(audio, t0, t1):
        return float(np.sqrt(np.mean(np.square(audio[int(t0 * SR) : int(t1 * SR)]))))

    pluck = render("additive", {**base, "sustain": 0.0, "hold": 0.8})
    held = render("additive", {**base, "sustain": 0.5, "hold": 0.8, "release": 0.05})
    peak = rms(held, 0.0, 0.02)
    assert rms(pluck, 0.3, 0.7) < 1e-3 * peak  # died away after its 0.1 s decay
    full = render("additive", {**base, "sustain": 1.0, "hold": 0.8, "release": 0.05})
    assert rms(held, 0.3, 0.7) == pytest.approx(0.5 * rms(full, 0.3, 0.7), rel=0.02)
    assert rms(held, 0.3, 0.5) == pytest.approx(rms(held, 0.5, 0.78), rel=0.02)  # steady while held
    assert rms(held, 0.86, 1.0) < 1e-3 * rms(held, 0.3, 0.7)  # released after hold + release
    assert peak_hz(held[int(0.3 * SR) : int(0.7 * SR)]) == pytest.approx(220.0, abs=3.0)
    # with sustain 0, hold and release change nothing: the pluck of before
    np.testing.assert_array_equal(pluck, render("additive", {**base, "sustain": 0.0, "hold": 0.1, "release": 1.0}))


def test_additive_noise_fills_the_valleys_between_the_partials():
    quiet = render("additive", {"freq": 220.0, "sustain": 1.0, "hold": 1.0, "noise": 0.0001})
    floor = render("additive", {"freq": 220.0, "sustain": 1.0, "hold": 1.0, "noise": 0.1})
    hz = np.fft.rfftfreq(SR, 1 / SR)
    valley = (np.abs(hz / 220.0 - np.round(hz / 220.0)) > 0.3) & (hz < 5000)
    level = [np.median(np.abs(np.fft.rfft(a * np.hanning(SR)))[valley]) for a in (quiet, floor)]
    assert level[1] > 100 * level[0]  # 0.1 vs 0.0001: 60 dB more, well above the window's leakage
    white = dsp.one_pole(dsp.hash_noise(SR), np.exp(-2 * np.pi * 10000.0 / SR))[0]  # ncutoff's default: ~white
    np.testing.assert_allclose(floor - quiet, 0.1 * 0.1 * white * dsp.envelope(
        np.array([[0, 1, 1, 1, 0]]), np.array([[0.01, 0.8, 0.19, 0.2]]), -4.0, SR, SR)[0] * (1 - 0.001), atol=1e-6)


def test_additive_onset_burst_is_the_floor_noise_on_its_own_envelope():
    """``bnoise`` adds the floor's noise (its colour) on its own envelope: up in 1 ms, down in ``bdecay`` (the
    -4 curve), whatever the partials' attack; gone once it has decayed."""
    slow = {"freq": 220.0, "attack": 0.3, "sustain": 1.0, "hold": 1.0, "ncutoff": 2000.0}
    burst = render("additive", {**slow, "bnoise": 1.0, "bdecay": 0.05}) - render("additive", slow)
    coloured = dsp.one_pole(dsp.hash_noise(SR), np.exp(-2 * np.pi * 2000.0 / SR))[0]
    shape = dsp.envelope(np.array([[0.0, 1.0, 0.0]]), np.array([[0.001, 0.05]]), -4.0, SR, SR)[0]
    np.testing.assert_allclose(burst, 0.1 * (1.0 - 0.0001) * coloured * shape, atol=1e-6)
    assert np.abs(burst[: int(0.01 * SR)]).max() > 0.03  # loud at the onset, while the partials are still rising
    assert not burst[int(0.06 * SR) :].any()  # and over after 1 ms + 50 ms


@needs_scsynth
def test_additive_burst_outlives_a_short_pluck_as_in_scsynth():
    """The burst plays until the synth ends (partial 1's envelope has run its hold and release), not only
    while partial 1 sounds: a 50 ms pluck with a 0.5 s burst, numpy against scsynth."""
    pluck = {"freq": 220.0, "sustain": 0.0, "decay": 0.05, "hold": 0.6, "release": 0.2, "bnoise": 1.0, "bdecay": 0.5}
    a, b = render("additive", pluck, backend="numpy"), render("additive", pluck, backend="nrt")
    assert np.abs(a[int(0.2 * SR) : int(0.3 * SR)]).max() > 0.01  # partial 1 is long silent, the burst is not
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_additive_reads_an_onset_burst_and_no_burst_where_there_is_none():
    """The reader finds a sustained note's onset noise (level within a factor of 1.6, decay within a factor
    of 2: its frames are 46 ms long) and reads none where the onset is clean (as the patch it reads makes it:
    its partials all decay alike, damp 0)."""
    note = {"freq": 220.0, **{f"a{k}": 0.5 / k for k in range(1, 25)}, "attack": 0.01, "sustain": 0.8, "hold": 0.9,
            "damp": 0.0, "noise": 0.003}  # fmt: skip
    reader = get_synth("additive").reader
    read = reader(render("additive", {**note, "bnoise": 0.3, "bdecay": 0.05}), SR, 220.0)
    assert np.log(read["bnoise"] / 0.3) == pytest.approx(0.0, abs=np.log(1.6))
    assert np.log2(read["bdecay"] / 0.05) == pytest.approx(0.0, abs=1.0)
    assert reader(render("additive", note), SR, 220.0)["bnoise"] == 0.0001


def test_additive_noise_colour_is_a_one_pole_low_pass_at_ncutoff():
    """``ncutoff`` low-passes the floor: the valleys between the partials keep their level well below the
    cutoff and fall as a one-pole's response above it; at the top of its range the floor is nearly white."""
    note = {"freq": 220.0, "sustain": 1.0, "hold": 1.0, "noise": 0.1}
    hz = np.fft.rfftfreq(SR, 1 / SR)
    valley = np.abs(hz / 220.0 - np.round(hz / 220.0)) > 0.3

    def floor(cutoff, lo, hi):
        spec = np.abs(np.fft.rfft(render("additive", {**note, "ncutoff": cutoff}) * np.hanning(SR)))
        return float(np.median(spec[valley & (hz > lo) & (hz < hi)]))

    c = np.exp(-2 * np.pi * 500.0 / SR)

    def response(f):
        return (1 - c) / abs(1 - c * np.exp(-2j * np.pi * f / SR))

    low, high = floor(500.0, 100, 200), floor(500.0, 4000, 6000)
    assert 20 * np.log10(high / low) == pytest.approx(20 * np.log10(response(5000) / response(150)), abs=2.0)
    assert high < 0.15 * low  # 500 Hz: over 16 dB darker at 5 kHz
    white = floor(10000.0, 4000, 6000) / floor(10000.0, 100, 200)
    assert white == pytest.approx(1.0, abs=0.2)


def test_additive_sub_octave_is_a_square_an_octave_below_on_partial_one_envelope():
    """``sub`` adds a square wave an octave below: partials at (k - 1/2) f with levels sub/(2k-1) relative
    to the loudest partial, none at the octave's even harmonics beyond the partials' own; it follows
    partial 1's envelope, so a pluck's sub dies with it."""
    amps = {f"a{k}": 0.001 for k in range(2, 25)}
    note = {**amps, "freq": 220.0, "a1": 1.0, "sustain": 1.0, "hold": 1.0, "noise": 0.0001}
    plain, organ = render("additive", {**note, "sub": 0.0001}), render("additive", {**note, "sub": 0.5})
    win = np.hanning(SR)
    spec = np.abs(np.fft.rfft((organ - plain) * win)) / (win.sum() / 2)  # the sub alone, amplitude per sine
    hz = np.fft.rfftfreq(SR, 1 / SR)
    full = np.abs(np.fft.rfft(organ * win)) / (win.sum() / 2)
    partial1 = full[np.argmin(np.abs(hz - 220.0))]
    for k in range(1, 9):
        level = spec[np.argmin(np.abs(hz - (k - 0.5) * 220.0))] / partial1
        assert 20 * np.log10(level / (0.5 / (2 * k - 1))) == pytest.approx(0.0, abs=0.5), k
    assert spec[np.argmin(np.abs(hz - 9.5 * 220.0))] < 1e-3 * partial1  # 8 partials, no more
    assert peak_hz(organ - plain) == pytest.approx(110.0, abs=1.5)
    pluck = {**note, "sustain": 0.0, "decay": 0.1, "damp": 0.0}
    sub = render("additive", {**pluck, "sub": 1.0}) - render("additive", {**pluck, "sub": 0.0001})
    assert np.sqrt(np.mean(np.square(sub[int(0.6 * SR) :]))) < 1e-4 * np.abs(sub).max()  # died with partial 1


def test_additive_tail_continues_the_spectrum_above_partial_24():
    """Partials 25-48 play at the geometric mean level of partials 17-24 times ``(24/k) ** tail`` (relative to
    the loudest partial), none above 48 or above Nyquist; a high note keeps only those below Nyquist. The
    reader reads the slope back, the steepest too (what a recording low-passed above partial 24 reads as)."""
    hz = np.fft.rfftfreq(SR, 1 / SR)
    win = np.hanning(SR)
    upper = np.geomspace(0.05, 0.02, 8)  # partials 17-24
    levels = {**{f"a{k}": 0.5 for k in range(1, 17)}, **{f"a{k}": float(v) for k, v in enumerate(upper, start=17)}}
    note = {**levels, "freq": 110.0, "sustain": 1.0, "hold": 1.0, "damp": 0.0, "noise": 0.0001}
    top = np.exp(np.log(upper / 0.5).mean())
    for tail in (0.5, 3.0):
        spec = np.abs(np.fft.rfft(render("additive", {**note, "tail": tail}) * win))
        loudest = spec[np.argmin(np.abs(hz - 110.0))]
        for k in (25, 32, 40, 48):
            level = spec[np.argmin(np.abs(hz - 110.0 * k))] / loudest
            assert 20 * np.log10(level / (top * (24 / k) ** tail)) == pytest.approx(0.0, abs=0.5), (tail, k)
        assert spec[np.argmin(np.abs(hz - 110.0 * 49))] < 1e-4 * loudest  # 48 partials, no more
    high = render("additive", {**note, "freq": 300.0, "tail": 0.5})  # partials 37-48 would alias: muted
    spec = np.abs(np.fft.rfft(high * win))
    assert spec[np.argmin(np.abs(hz - (SR - 300.0 * 40)))] < 1e-4 * spec.max()  # 12 kHz would fold to 10.05
    reader = get_synth("additive").reader
    assert reader(render("additive", {**note, "tail": 5.0}), SR, 110.0)["tail"] == pytest.approx(5.0, rel=0.07)
    assert reader(render("additive", {**note, "tail": 64.0}), SR, 110.0)["tail"] == 64.0


def _cents(audio: np.ndarray, f0: float, k: float = 4.0) -> np.ndarray:
    """The pitch (cents from ``f0``) of the partial at ``k f0`` in 23 ms frames every 1.5 ms: the phase advance
    of the frame's complex demodulation there (an independent measure, not the reader's)."""
    t = np.arange(audio.size) / SR
    base = audio * np.exp(-2j * np.pi * k * f0 * t)
    smooth = np.convolve(base, np.hanning(512), "same")[::32]  # a low-pass well below f0 around the partial
    drift = np.angle(smooth[1:] * np.conj(smooth[:-1])) / (2 * np.pi * 32 / SR)  # Hz off k f0
    return 1200 * np.log2(1 + drift / (k * f0))


def test_additive_vibrato_moves_every_partial_by_vdepth_cents_at_vrate():
    """``vdepth`` cents of vibrato at ``vrate`` from ``vphase``: the measured pitch of partial 1, partial 4 and
    the sub-octave's first partial (f/2) is a sine of that rate, within 3% of that depth and 0.02 rad of that
    phase (less half a control block: each block holds its value), with under 1.5 cents (rms) of anything
    else (the blocks' steps; 2.5 for the sub-octave, whose next partial, a third as loud, is only 220 Hz
    away); vdepth 0 (the default) holds the pitch."""
    note = {"freq": 220.0, "sustain": 1.0, "hold": 1.0, "damp": 0.0, "noise": 0.0001}
    vibrato = {"vrate": 6.0, "vdepth": 30.0, "vphase": 1.0}
    audio = render("additive", {**note, **vibrato})
    sub = render("additive", {**note, **vibrato, "sub": 1.0}) - audio  # the sub-octave alone
    for partial, alone, rest in ((1.0, audio, 1.5), (4.0, audio, 1.5), (0.5, sub, 2.5)):
        moved = _cents(alone, 220.0, partial)[20:-20]
        t = (np.arange(20, 20 + moved.size) * 32 + 16) / SR  # away from the smoothing's edges
        sines = np.stack([np.sin(2 * np.pi * 6.0 * t), np.cos(2 * np.pi * 6.0 * t)], axis=1)
        fit = np.linalg.lstsq(sines, moved, rcond=None)[0]
        assert np.hypot(*fit) == pytest.approx(30.0, rel=0.03), partial
        assert np.arctan2(fit[1], fit[0]) == pytest.approx(1.0 - 2 * np.pi * 6.0 * 32 / SR, abs=0.02), partial
        assert np.std(moved - sines @ fit) < rest, partial
    assert np.abs(_cents(render("additive", note), 220.0))[20:-20].max() < 0.5  # the neighbours' leakage


@needs_scsynth
def test_additive_vibrato_matches_scsynth_sample_for_sample():
    """Vibrato on the partials and the sub-octave (per control block, from ``vphase``): numpy against scsynth."""
    note = {"freq": 330.0, "sustain": 0.8, "hold": 0.9, "sub": 0.3, "vrate": 7.3, "vdepth": 50.0, "vphase": 2.0}
    a, b = render("additive", note, backend="numpy"), render("additive", note, backend="nrt")
    assert np.abs(a - render("additive", {**note, "vdepth": 0.0})).max() > 0.05  # the vibrato is there
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_chorus_reads_delayl_between_samples_and_sweeps_its_delay():
    """dsp.chorus is DelayL: a 1 ms delay at 22050 Hz (22.05 samples) puts an impulse 0.95 at sample 22 and 0.05
    at 23; a swept delay moves a sine's frequency by the delay's slope (d/dt of 1 ms + depth/2 (1 + sin))."""
    x = np.zeros((1, 100))
    x[0, 0] = 1.0
    out = dsp.chorus(x, np.zeros(1), np.ones(1), SR, voices=1)[0]
    assert out[22] == pytest.approx(0.95, abs=1e-4) and out[23] == pytest.approx(0.05, abs=1e-4)
    assert np.abs(out[:22]).sum() == 0.0 and np.abs(out[24:]).sum() == 0.0
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 1000.0 * t)[None]
    swept = dsp.chorus(tone, np.array([10.0]), np.array([2.0]), SR, voices=1)[0]  # a 10 ms sweep
    phase = np.unwrap(np.angle(np.convolve(swept * np.exp(-2j * np.pi * 1000.0 * t), np.hanning(512), "same")))
    hz = np.gradient(phase) * SR / (2 * np.pi)  # off 1 kHz
    slope = -1000.0 * 0.005 * 2 * np.pi * 2.0 * np.cos(2 * np.pi * 2.0 * t)  # -f d(delay)/dt
    assert np.abs(hz - slope)[1000:-1000].max() < 0.5  # of a 63 Hz swing


def test_additive_chorus_spreads_upper_partials_into_skirts():
    """``chorus`` fills the valleys between upper partials (a swept delay moves partial k by k times as many
    Hz) far more than between the first two; the least ``chorus`` (the default) leaves them at the floor."""
    note = {"freq": 220.0, **{f"a{k}": 0.5 for k in range(1, 25)}, "sustain": 1.0, "hold": 1.0, "damp": 0.0}

    def valley(audio: np.ndarray, k: int) -> float:  # dB of the valley between partials k and k+1 under them
        seg = audio[int(0.2 * SR) : int(0.9 * SR)]
        spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
        hz = np.fft.rfftfreq(seg.size, 1 / SR)
        mid = np.abs(hz - (k + 0.5) * 220.0) < 30.0
        peak = np.abs(hz - k * 220.0) < 10.0
        return 20 * np.log10(spec[mid].mean() / spec[peak].max())

    dry = render("additive", note)
    wet = render("additive", {**note, "chorus": 0.5, "cdepth": 10.0, "crate": 1.0})
    assert valley(wet, 15) > valley(dry, 15) + 20
    assert valley(wet, 15) > valley(wet, 1) + 10


@needs_scsynth
def test_additive_chorus_matches_scsynth_sample_for_sample():
    """The chorus (three DelayL on audio-rate SinOscs) with vibrato and noise, at a rate SinOsc's integer phase
    step rounds down by most of a step (4.9884 Hz), a short pluck, and a note released at 0.35 s whose copies
    are cut mid-sound where the synth is freed (at the end of a control block): numpy against scsynth."""
    notes = [{"freq": 330.0, "sustain": 0.8, "hold": 0.9, "sub": 0.3, "vdepth": 20.0, "vphase": 2.0, "noise": 0.05,
              "chorus": 0.7, "cdepth": 8.0, "crate": 1.3},
             {"freq": 220.0, "sustain": 1.0, "hold": 1.0, "damp": 0.0, "chorus": 1.0, "cdepth": 20.0, "crate": 4.9884},
             {"freq": 110.0, "decay": 0.3, "hold": 0.4, "bnoise": 1.0, "chorus": 1.0, "cdepth": 20.0, "crate": 5.0},
             {"freq": 440.0, "sustain": 1.0, "hold": 0.3125, "release": 0.037, "chorus": 1.0, "cdepth": 20.0}]
    for note in notes:
        a, b = render("additive", note, backend="numpy"), render("additive", note, backend="nrt")
        assert np.abs(a - render("additive", {**note, "chorus": 0.001})).max() > 0.05  # the chorus is there
        np.testing.assert_allclose(a, b, atol=3e-4)  # an LFO a step slow per sample drifts to 5e-3
        assert np.nonzero(a)[0].max() == np.nonzero(b)[0].max()
    last = np.nonzero(a)[0].max()
    assert (last + 1) % 64 == 0 and np.abs(a[last - 63 : last + 1]).max() > 1e-3  # cut mid-sound at a block's end


def test_additive_reads_vibrato_and_none_on_a_steady_note():
    """The reader finds a vibrato's rate (within 0.05 Hz), depth (within 10%) and phase (within 0.02 rad:
    the half control block it adds is 0.05 at 5.3 Hz), on a low note too (131 Hz, whose upper partials lie a
    few bins apart), and no vibrato on a steady note or one whose pitch only drifts."""
    reader = get_synth("additive").reader
    for f0 in (262.0, 131.0):
        note = {"freq": f0, **{f"a{k}": 0.5 / k for k in range(1, 25)}, "sustain": 0.8, "hold": 0.95, "damp": 0.0}
        for rate, depth, phase in ((5.3, 20.0, 1.0), (7.7, 8.0, 4.0), (3.5, 40.0, 5.9)):
            read = reader(render("additive", {**note, "vrate": rate, "vdepth": depth, "vphase": phase}), SR, f0)
            assert read["vrate"] == pytest.approx(rate, abs=0.05), (f0, rate)
            assert read["vdepth"] == pytest.approx(depth, rel=0.1), (f0, rate)
            assert abs(np.angle(np.exp(1j * (read["vphase"] - phase)))) < 0.02, (f0, rate)
        assert reader(render("additive", note), SR, f0)["vdepth"] == 0.0
    t = np.arange(SR) / SR
    drift = 0.1 * np.sin(2 * np.pi * 262.0 * (t + 0.01 * t**2)) * np.minimum(1, 20 * t)  # 34 cents up in a second
    assert reader(drift, SR, 262.0)["vdepth"] == 0.0


def test_additive_reads_its_own_patch_back_from_its_sound():
    """read_patch on a rendered additive note gives its partial levels (those within 40 dB of the loudest),
    its sustain, its attack, its sub-octave and its inharmonicity back, the noise floor within a few dB and
    its colour within an octave."""
    spec = get_synth("additive")
    shuffled = np.geomspace(1.0, 0.01, 24)[np.random.default_rng(3).permutation(24)]  # 40 dB of levels
    levels = {f"a{k}": float(v) for k, v in enumerate(shuffled, start=1)}
    truth = {"freq": 196.0, **levels, "attack": 0.05, "decay": 0.2, "damp": 0.0, "sustain": 0.6, "hold": 0.9,
             "noise": 0.003, "ncutoff": 1500.0, "sub": 0.2}
    audio = render("additive", truth)
    read = spec.reader(audio, SR, 196.0)
    loudest = max(levels.values())
    for k in range(1, 25):
        want = levels[f"a{k}"] / loudest
        if want > 0.01:
            assert 20 * np.log10(read[f"a{k}"] / want) == pytest.approx(0.0, abs=1.0), k
    assert read["sustain"] == pytest.approx(0.6, abs=0.08)
    assert read["attack"] == pytest.approx(0.05, abs=0.03)
    assert read["hold"] == pytest.approx(0.93, abs=0.04)  # the release's curve halves the level in 34 ms
    assert 20 * np.log10(read["noise"] / (truth["noise"] / loudest)) == pytest.approx(0.0, abs=4.0)
    assert np.log2(read["ncutoff"] / truth["ncutoff"]) == pytest.approx(0.0, abs=1.0)  # within an octave
    assert 20 * np.log10(read["sub"] / (truth["sub"] / loudest)) == pytest.approx(0.0, abs=1.0)
    assert spec.reader(render("additive", {**truth, "sub": 0.0001}), SR, 196.0)["sub"] < 0.01  # none: none read
    assert read["inharm"] <= 1e-5  # harmonic: none (or the smallest step) read
    stiff = {**truth, "inharm": 4e-4}  # a piano's stretch: partial 24 sits 11% above 24 f0
    stiff_read = spec.reader(render("additive", stiff), SR, 196.0)
    assert np.log10(stiff_read["inharm"] / 4e-4) == pytest.approx(0.0, abs=0.11)  # the grid's step is 10**0.1
    for k in range(1, 25):  # the levels read where the stretched partials are
        want = levels[f"a{k}"] / loudest
        if want > 0.01 and 196.0 * k * np.sqrt(1 + 4e-4 * k**2) < SR / 2:
            assert 20 * np.log10(stiff_read[f"a{k}"] / want) == pytest.approx(0.0, abs=1.5), k
    rows = spec.read_start(audio, SR, 196.0)  # normalised, every parameter, defaults where nothing was read
    assert rows.shape == (3, spec.n_params) and 0.0 <= rows.min() and rows.max() <= 1.0
    patches = [spec.to_dict(p) for p in spec.denormalize(rows)]
    least = spec.params[spec.index("chorus")].low  # no chorus read: the least (0.001, the copies 60 dB down)
    assert patches[0]["sustain"] == pytest.approx(read["sustain"]) and patches[0]["chorus"] == pytest.approx(least)
    for patch, chorus in zip(patches[1:], additive.READ_CHORUSES, strict=True):  # the read patch again with each chorus
        assert {k: patch[k] for k in chorus} == pytest.approx(chorus)
        assert {k: v for k, v in patch.items() if k not in chorus} == pytest.approx(
            {k: v for k, v in patches[0].items() if k not in chorus})
    assert spec.read_start(audio, SR, None) is None  # no pitch: nothing to read
    assert get_synth("subtractive").read_start(audio, SR, 196.0) is None  # no reader


def test_saw_follows_scsynth_algorithm_not_an_ideal_series():
    """SC's Saw descends, is about half amplitude and its top harmonics stand above 1/k."""
    n = SR
    f = 441.0
    s = dsp.saw(np.array([f]), n, SR)[0]
    s = s[2000:]
    spec = np.abs(np.fft.rfft(s * np.hanning(s.size))) / (np.hanning(s.size).sum() / 2)
    hz = np.fft.rfftfreq(s.size, 1 / SR)
    h = [spec[np.argmin(np.abs(hz - k * f))] for k in range(1, 25)]
    assert h[0] == pytest.approx(1 / np.pi, rel=0.05)  # half of the ±1 saw's 2/π
    top = h[22] * 23 / h[0]  # relative to an ideal 1/k series
    assert 1.2 < top < 1.7
    ramp = ((np.arange(2000, n) * f / SR) % 1.0) - 0.5  # an ascending ramp in phase with the saw
    assert np.corrcoef(s, ramp)[0, 1] < -0.9  # SC's saw descends


def test_rlpf_has_unity_dc_gain_and_resonates_at_cutoff():
    n = 8192
    dc = dsp.rlpf(np.ones((1, n)), np.full((1, n // 64), 1000.0), np.array([0.5]), SR)[0]
    assert dc[-1] == pytest.approx(1.0, abs=1e-6)
    impulse = np.zeros((1, n))
    impulse[0, 0] = 1.0
    resp = dsp.rlpf(impulse, np.full((1, n // 64), 2000.0), np.array([0.1]), SR)[0]
    spec = np.abs(np.fft.rfft(resp))
    assert np.argmax(spec) * SR / n == pytest.approx(2000.0, rel=0.03)


def test_envelope_curve_formula_and_shape():
    env = dsp.envelope(np.array([[0.0, 1.0, 0.0]]), np.array([[0.01, 0.1]]), -4.0, 4000, SR)[0]
    att = int(0.01 * SR)
    x = np.arange(1, att + 1) / att
    np.testing.assert_allclose(env[:att], (1 - np.exp(-4 * x)) / (1 - np.exp(-4)), atol=1e-9)
    assert env[att - 1] == pytest.approx(1.0)
    assert env[att + int(0.1 * SR) :].max() == 0.0
    assert np.all(np.diff(env[att:]) <= 1e-12)


def test_pulse_width_changes_harmonics():
    f = 441.0
    square = dsp.pulse(np.array([f]), np.array([0.5]), SR, SR)[0][2000:]
    spec = np.abs(np.fft.rfft(square * np.hanning(square.size)))
    hz = np.fft.rfftfreq(square.size, 1 / SR)
    h = [spec[np.argmin(np.abs(hz - k * f))] for k in (1, 2, 3)]
    assert h[1] < 0.01 * h[0]  # a square wave has no even harmonics
    assert h[2] > 0.2 * h[0]
