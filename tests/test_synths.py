"""Surrogate DSP sanity, measured on the audio."""

import numpy as np
import pytest

from synthenv import get_synth, render
from synthenv.synths import dsp

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
    amps = {f"a{k}": 0.0 for k in range(1, 9)}
    audio = render("additive", {**amps, "freq": 200.0, "a3": 1.0, "decay": 2.0})
    assert peak_hz(audio) == pytest.approx(600.0, abs=2.0)
    stiff = render("additive", {**amps, "freq": 200.0, "a8": 1.0, "inharm": 0.01, "decay": 2.0})
    assert peak_hz(stiff) == pytest.approx(1600 * np.sqrt(1 + 0.01 * 64), abs=3.0)


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
