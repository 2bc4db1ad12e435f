"""The ``voice`` synth: its building blocks, that each knob shapes the sound, and scsynth parity."""


import librosa
import numpy as np
import pytest
from conftest import needs_sclang, needs_scsynth

import synthenv
from synthenv import distances, get_synth, render
from synthenv.features import analyze
from synthenv.synths import dsp

SR = 22050
CLEAN = {"noise": 0.0, "vdepth": 0.0, "osc2": 0.0, "bgain": 0.0, "fenv": 0.0}  # one steady oscillator


def spectrum(audio: np.ndarray, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    win = np.hanning(audio.size)
    return np.fft.rfftfreq(audio.size, 1 / sr), np.abs(np.fft.rfft(audio * win)) / (win.sum() / 2)


def harmonic_db(audio: np.ndarray, f0: float, k: int) -> float:
    hz, mag = spectrum(audio)
    band = (hz > k * f0 * 0.97) & (hz < k * f0 * 1.03)
    return float(20 * np.log10(mag[band].max()))


def f0_track(audio: np.ndarray) -> np.ndarray:
    return librosa.yin(audio, fmin=60, fmax=1500, sr=SR, frame_length=1024, hop_length=128)


# -- building blocks --------------------------------------------------------------------------------------------


def test_saw_pulse_at_a_constant_frequency_is_the_saw_and_pulse_mix():
    f = np.array([55.0, 220.0, 441.0, 1760.0])
    blocks = np.repeat(f[:, None], -(-SR // dsp.BLOCK_SIZE), 1)
    for mix in (0.0, 0.3, 1.0):
        out = dsp.saw_pulse(blocks, np.full(4, mix), np.full(4, 0.3), SR, SR)
        ref = (1 - mix) * dsp.saw(f, SR, SR) + mix * dsp.pulse(f, np.full(4, 0.3), SR, SR)
        np.testing.assert_array_equal(out, ref)


def test_saw_pulse_follows_a_block_rate_frequency_without_clicks():
    n_blocks = -(-SR // dsp.BLOCK_SIZE)
    glide = np.geomspace(200.0, 800.0, n_blocks)[None, :]  # crosses many harmonic-count (N) boundaries
    out = dsp.saw_pulse(glide, np.array([0.5]), np.array([0.5]), SR, SR)[0]
    steady = dsp.saw_pulse(np.full((1, n_blocks), 800.0), np.array([0.5]), np.array([0.5]), SR, SR)[0]
    assert np.isfinite(out).all() and np.abs(out).max() < 1.0
    assert np.abs(np.diff(out)).max() < 1.05 * np.abs(np.diff(steady)).max()  # crossfading kernels adds no jumps
    early, late = f0_track(out[:4096].astype(np.float32)), f0_track(out[-4096:].astype(np.float32))
    assert np.median(early) == pytest.approx(200.0 * 4 ** (2048 / SR), rel=0.03)  # the glide at the window's middle
    assert np.median(late) == pytest.approx(200.0 * 4 ** (1 - 2048 / SR), rel=0.03)


def test_hasher_is_thomas_wangs_hash_of_the_float_bits():
    def wang(x: int) -> int:
        m = 0xFFFFFFFF
        h = x & m
        h = (h + (~(h << 15) & m)) & m
        h ^= h >> 10
        h = (h + (h << 3)) & m
        h ^= h >> 6
        h = (h + (~(h << 11) & m)) & m
        return h ^ (h >> 16)

    x = np.array([0.0, 1.0, 2.0, 12345.0, 2.0**23], dtype=np.float32)
    want = [np.uint32(0x40000000 | (wang(int(b)) >> 9)).view(np.float32) - np.float32(3) for b in x.view(np.uint32)]
    np.testing.assert_array_equal(dsp.hasher(x), np.array(want, dtype=np.float32))
    noise = dsp.hash_noise(SR)
    assert noise.dtype == np.float32 and -1.0 <= noise.min() and noise.max() < 1.0
    assert abs(noise.mean()) < 0.02 and np.std(noise) == pytest.approx(1 / np.sqrt(3), rel=0.02)
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.03  # white


def test_bpeakeq_peaks_by_its_gain_at_its_frequency_and_is_flat_elsewhere():
    n = 16384
    impulse = np.zeros((1, n))
    impulse[0, 0] = 1.0
    resp = dsp.bpeakeq(impulse, np.full((1, n // 64), 1500.0), np.array([0.3]), np.array([12.0]), SR)[0]
    hz = np.fft.rfftfreq(n, 1 / SR)
    db = 20 * np.log10(np.abs(np.fft.rfft(resp)))
    assert hz[np.argmax(db)] == pytest.approx(1500.0, rel=0.01)
    assert db.max() == pytest.approx(12.0, abs=0.05)
    assert abs(db[np.argmin(np.abs(hz - 50))]) < 0.2 and abs(db[-1]) < 0.2


def test_sine_kr_is_a_block_rate_sine():
    s = dsp.sine_kr(np.array([5.0]), 345, SR)[0]
    t = np.arange(345) * dsp.BLOCK_SIZE / SR
    np.testing.assert_allclose(s, np.sin(2 * np.pi * 5.0 * t), atol=1e-4)


# -- the synth --------------------------------------------------------------------------------------------------


def test_spec_ranges_are_documented():
    spec = get_synth("voice")
    assert 16 <= spec.n_params <= 22
    assert "voice" in synthenv.available_synths()
    for p in spec.params:
        assert p.doc, p.name
    assert spec.params[spec.index("vrate")].low == 4.0 and spec.params[spec.index("vrate")].high == 7.0
    assert spec.params[spec.index("bfreq")].low == 200.0 and spec.params[spec.index("bfreq")].high == 4000.0


def test_defaults_render_finite_at_about_minus_10_dbfs():
    audio = render("voice", {})
    assert audio.dtype == np.float32 and audio.shape == (SR,) and np.isfinite(audio).all()
    assert -12.0 < 20 * np.log10(np.abs(audio).max()) < -8.0


def test_batch_equals_single_renders():
    spec = get_synth("voice")
    rows = [spec.to_dict(spec.denormalize(x)) for x in np.random.default_rng(1).random((3, spec.n_params))]
    batch = render("voice", rows)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(batch[i], render("voice", row), atol=1e-6)


def test_every_parameter_changes_the_sound():
    spec = get_synth("voice")
    base = {"freq": 330.0, "pitchenv": 5.0, "noise": 0.1, "ndecay": 1.0}  # pdecay, noise, keytrack not inert here
    rows = [base]
    for p in spec.params:
        rows += [{**base, p.name: p.low}, {**base, p.name: p.high}]
    an = analyze(render("voice", rows), SR)
    d = distances.compute("logmel_l1", an.take(slice(1, None, 2)), an.take(slice(2, None, 2)))
    for p, dist in zip(spec.params, d, strict=True):
        assert dist > 0.3, f"{p.name}: low and high sound alike ({dist:.3f} dB)"


def test_noise_level_raises_spectral_flatness():
    rows = [{**CLEAN, "noise": level, "ndecay": 10.0, "cutoff": 6000.0} for level in (0.0, 0.25)]
    flat = [float(np.median(librosa.feature.spectral_flatness(y=a)[0, 5:60])) for a in render("voice", rows)]
    assert flat[1] > 20 * flat[0], flat


def test_noise_envelope_decays_in_ndecay():
    cases = ((0.0, 1.0), (0.25, 0.02), (0.25, 10.0))
    silent, hammer, breath = render("voice", [{**CLEAN, "noise": v, "ndecay": t, "sustain": 1.0} for v, t in cases])
    early, late = slice(0, 200), slice(11025, 15025)  # the first 9 ms, 0.5 .. 0.68 s

    def energy(x: np.ndarray, when: slice) -> float:  # of the noise alone: the filters are linear
        return float(((x - silent)[when] ** 2).mean())

    assert energy(hammer, early) > 1e-6 and energy(breath, early) > 1e-6
    assert energy(hammer, late) < 1e-6 * energy(hammer, early)  # by 0.5 s the hammer noise is gone ...
    assert energy(breath, late) > 0.1 * energy(breath, early)  # ... and the breath is not


def test_vibrato_depth_modulates_the_pitch_track():
    tracks = []
    for depth in (0.0, 50.0):
        a = render("voice", {**CLEAN, "vdepth": depth, "vrate": 5.0, "sustain": 1.0, "hold": 1.0})
        tracks.append(f0_track(a)[20:140])  # 0.1 .. 0.8 s
    flat, wobbly = (1200 * np.log2(t.max() / t.min()) for t in tracks)
    assert flat < 5.0  # cents, peak to peak
    assert 70.0 < wobbly < 130.0  # ±50 cents
    spec = np.abs(np.fft.rfft(tracks[1] - tracks[1].mean(), 2048))
    rate = np.argmax(spec) * (SR / 128) / 2048
    assert rate == pytest.approx(5.0, abs=0.5)


def test_body_peak_raises_energy_near_its_frequency():
    rows = [{**CLEAN, "freq": 110.0, "cutoff": 8000.0, "bfreq": 1500.0, "brq": 0.2, "bgain": g} for g in (0.0, 18.0)]
    flat, body = render("voice", rows)
    hz, m0 = spectrum(flat)
    _, m1 = spectrum(body)
    near = (hz > 1400) & (hz < 1600)
    far = (hz > 100) & (hz < 400)
    gain_near = 10 * np.log10((m1[near] ** 2).sum() / (m0[near] ** 2).sum())
    gain_far = 10 * np.log10((m1[far] ** 2).sum() / (m0[far] ** 2).sum())
    assert gain_near > 12.0 and abs(gain_far) < 1.5, (gain_near, gain_far)


def test_key_tracking_moves_the_cutoff_with_pitch():
    def tilt(f0: float, keytrack: float) -> float:  # 3rd harmonic over the fundamental, dB
        a = render("voice", {**CLEAN, "freq": f0, "cutoff": 500.0, "rq": 1.0, "keytrack": keytrack})
        return harmonic_db(a, f0, 3) - harmonic_db(a, f0, 1)

    tracked = tilt(440.0, 1.0) - tilt(110.0, 1.0)
    fixed = tilt(440.0, 0.0) - tilt(110.0, 0.0)
    assert abs(tracked) < 3.0  # the cutoff moved with the pitch: the same spectrum shape
    assert fixed < -12.0  # a fixed cutoff darkens high notes


def test_pitch_envelope_makes_the_attack_pitch_differ():
    def attack_and_body(pitchenv: float) -> tuple[float, float]:
        a = render("voice", {**CLEAN, "freq": 220.0, "pitchenv": pitchenv, "pdecay": 0.3, "attack": 0.001})
        f0 = f0_track(a)
        return float(np.median(f0[1:6])), float(np.median(f0[60:120]))  # 8-40 ms, 0.35-0.7 s

    start, body = attack_and_body(7.0)
    assert body == pytest.approx(220.0, rel=0.01)
    assert 12 * np.log2(start / body) > 3.0  # semitones above, falling
    start, body = attack_and_body(-7.0)
    assert 12 * np.log2(start / body) < -3.0  # a scoop from below
    start, body = attack_and_body(0.0)
    assert start == pytest.approx(body, rel=0.01)


# -- against scsynth --------------------------------------------------------------------------------------------


HASH_SCD = (
    "SynthDef(\\test_hash_noise, { |out = 0, amp = 1| Out.ar(out, Hasher.ar(Phasor.ar(0, 1, 0, 2 ** 24)) * amp) })"
)


def _hash_noise_surrogate(params, sr, n):
    return (dsp.hash_noise(n)[None, :] * params[:, :1]).astype(np.float32)


@pytest.mark.scsynth
@needs_sclang
@needs_scsynth
def test_hash_noise_is_bit_exact_with_scsynth(tmp_path):
    scd = tmp_path / "test_hash_noise.scd"
    scd.write_text(HASH_SCD)
    spec = synthenv.SynthSpec(
        "test_hash_noise", (synthenv.Param("amp", 0.0, 1.0, 1.0),), _hash_noise_surrogate,
        synthdef="test_hash_noise", synthdef_path=str(scd),
    )  # fmt: skip
    synthenv.register_synth(spec, replace=True)
    sc = render("test_hash_noise", [{"amp": 1.0}, {"amp": 0.5}], backend="nrt")
    np.testing.assert_array_equal(sc[0], dsp.hash_noise(SR))
    np.testing.assert_array_equal(sc, render("test_hash_noise", [{"amp": 1.0}, {"amp": 0.5}]))


@pytest.mark.scsynth
@needs_scsynth
def test_voice_noise_matches_scsynth_sample_by_sample():
    """The voice with and without noise, same params: the difference is the noise through the filters."""
    spec = get_synth("voice")
    rng = np.random.default_rng(7)
    rows = []
    for x in rng.random((4, spec.n_params)):
        row = spec.to_dict(spec.denormalize(x))
        rows += [{**row, "noise": 0.25, "ndecay": 2.0}, {**row, "noise": 0.0, "ndecay": 2.0}]
    a_np, a_sc = render("voice", rows), render("voice", rows, backend="nrt")
    n_np, n_sc = a_np[0::2] - a_np[1::2], a_sc[0::2] - a_sc[1::2]
    for x, y in zip(n_np, n_sc, strict=True):
        assert np.abs(y).max() > 0.01
        assert np.corrcoef(x, y)[0, 1] > 0.99999
        assert np.abs(x - y).max() < 1e-3 * np.abs(y).max() + 1e-5


@pytest.mark.scsynth
@needs_scsynth
def test_nrt_renders_voice_like_numpy_does():
    rows = [{"freq": 330.0}, {"freq": 660.0, "vdepth": 50.0, "pitchenv": -5.0, "noise": 0.2, "wave": 0.8}]
    a_np, a_sc = render("voice", rows), render("voice", rows, backend="nrt")
    for x, y in zip(a_np, a_sc, strict=True):
        assert np.corrcoef(x, y)[0, 1] > 0.9999
        assert np.abs(x - y).max() < 1e-3
