import numpy as np
import pytest

from synthenv import distances, get_synth, render
from synthenv.features import (
    N_MFCC,
    analyze,
    loudness_normalize,
    segment_means,
    summary_size,
)

SR = 22050


def test_shapes_and_dtypes_batched():
    audio = render("fm", [{"freq": 220.0}, {"freq": 440.0}, {"freq": 880.0}])
    an = analyze(audio, SR)
    t = 1 + SR // 256
    assert an.logmel.shape == (3, t, 64) and an.logmel.dtype == np.float32
    assert an.mfcc.shape == (3, t, N_MFCC) and an.mfcc.dtype == np.float32
    assert an.summary.shape == (3, summary_size()) and an.summary.dtype == np.float32
    single = analyze(audio[1], SR)
    np.testing.assert_allclose(single.summary[0], an.summary[1], atol=1e-4)


def test_loudness_normalisation_makes_features_level_independent():
    audio = render("subtractive", {})
    a, b = analyze(audio, SR), analyze(0.05 * audio, SR)
    for name in distances.available_distances("audio"):
        assert distances.compute(name, a, b)[0] == pytest.approx(0.0, abs=1e-3)
    rms = np.sqrt(np.mean(loudness_normalize(audio) ** 2))
    assert rms == pytest.approx(0.1, rel=1e-4)


def test_silent_audio_is_handled():
    an = analyze(np.zeros(SR, np.float32), SR)
    assert np.all(an.audio == 0)
    assert np.all(an.logmel == -100.0)
    assert np.isfinite(an.summary).all()


def test_full_scale_sine_peaks_at_0_db():
    t = np.arange(SR) / SR
    f = 46 * SR / 1024  # on a bin centre, so no scalloping loss
    an = analyze(np.sin(2 * np.pi * f * t), SR, normalize=False)
    assert an.power_db[0, 10:-10].max() == pytest.approx(0.0, abs=0.2)


def test_segment_means():
    frames = np.arange(2 * 16 * 3, dtype=np.float32).reshape(2, 16, 3)
    out = segment_means(frames, 8)
    assert out.shape == (2, 24)
    np.testing.assert_allclose(out[0, :3], frames[0, :2].mean(axis=0))
    with pytest.raises(ValueError):
        segment_means(frames[:, :4], 8)


def test_summary_separates_different_sounds():
    spec = get_synth("fm")
    rows = spec.denormalize(np.random.default_rng(0).random((20, spec.n_params)))
    an = analyze(spec.surrogate(rows, SR, SR), SR)
    s = an.summary
    assert np.abs(s).max() <= 10.0
    dist = np.abs(s[:, None] - s[None]).sum(-1)
    assert np.all(dist[~np.eye(20, dtype=bool)] > 0.1)


def test_stft_logmel_and_mfcc_equal_librosa_on_the_same_settings():
    """The hand-written, batched extractor against librosa's reference implementation: Hann (periodic),
    centred zero-padded frames, N_FFT/HOP, Slaney mel triangles without area normalisation, dB with
    the same floor, orthonormal DCT-II."""
    import librosa

    from synthenv.features import FLOOR_DB, HOP, N_FFT, N_MELS, N_MFCC, analyze

    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    sounds = np.stack([
        0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t),
        0.1 * rng.standard_normal(SR),
        0.2 * np.sign(np.sin(2 * np.pi * 97 * t)),
    ]).astype(np.float32)  # fmt: skip
    an = analyze(sounds, SR, normalize=False)
    window = np.hanning(N_FFT + 1)[:-1]
    scale = (window.sum() / 2) ** 2
    for i, y in enumerate(sounds):
        power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, window="hann", center=True,
                                    pad_mode="constant")) ** 2 / scale  # fmt: skip
        np.testing.assert_allclose(an.power[i], power.T, rtol=1e-3, atol=1e-7 * power.max())
        mel = librosa.feature.melspectrogram(S=power, sr=SR, n_mels=N_MELS, fmin=0.0, fmax=SR / 2, norm=None)
        logmel = librosa.power_to_db(mel, ref=1.0, amin=10 ** (FLOOR_DB / 10), top_db=None)
        np.testing.assert_allclose(an.logmel[i], logmel.T, atol=0.01)
        mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=N_MFCC, dct_type=2, norm="ortho")
        np.testing.assert_allclose(an.mfcc[i], mfcc.T, atol=0.05)
