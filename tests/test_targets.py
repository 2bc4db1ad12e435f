import numpy as np
import pytest
import soundfile

from synthenv import TargetError
from synthenv.targets import F0_RANGE, AudioTargets, estimate_f0, load_audio, prepare_audio, refine_f0

SR = 22050


def test_wav_is_mixed_resampled_trimmed_and_pitch_tracked(pluck_wav):
    audio = load_audio(pluck_wav, SR, 1.0)
    assert audio.shape == (SR,) and audio.dtype == np.float32
    assert np.abs(audio[:200]).max() > 0.05  # the 0.2 s of leading silence is gone
    assert estimate_f0(audio, SR) == pytest.approx(196.0, rel=0.02)


@pytest.mark.parametrize("ext, subtype", [("flac", "PCM_24"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_compressed_and_high_rate_files_load(tmp_path, ext, subtype):
    """A 48 kHz stereo note of a sampled real instrument (A4 violin), written as FLAC, OGG or MP3."""
    import librosa

    from synthenv.samples import instrument_notes

    note, sr = soundfile.read(str(instrument_notes()["violin"]), dtype="float32")
    stereo = np.stack([note, 0.7 * note], 1)
    path = tmp_path / f"violin.{ext}"
    soundfile.write(path, librosa.resample(stereo.T, orig_sr=sr, target_sr=48000).T, 48000, subtype=subtype)
    audio = load_audio(path, SR, 1.0)
    assert audio.shape == (SR,) and np.isfinite(audio).all()
    assert estimate_f0(audio, SR) == pytest.approx(440.0, rel=0.02)


def _harmonic_tone(f0: float, vibrato_cents: float = 0.0, n_harmonics: int = 30) -> np.ndarray:
    """1 s of a 1/k harmonic tone at ``f0`` (with a 5.5 Hz vibrato of ``vibrato_cents``), with a decay."""
    t = np.arange(SR) / SR
    inst = f0 * 2 ** (vibrato_cents / 1200 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(inst) / SR
    k = np.arange(1, n_harmonics + 1)[:, None]
    tone = (np.sin(k * phase) / k * (k * f0 < SR / 2)).sum(0) * np.exp(-t * 1.5)
    return (0.3 * tone / np.abs(tone).max()).astype(np.float32)


@pytest.mark.parametrize("f0", [110.0, 311.0, 1500.0])
def test_pitch_is_refined_between_pyins_grid_points(f0):
    """pyin's pitches lie on a 10-cent grid (from ``fmin``): a tone 3.7 cents from one grid point and 6.3
    from the next is read about 4 cents off by pyin, which is 80 cents at the 20th harmonic. The
    refined pitch (off its own 0.25-cent grid by 0.05 cent) is within a quarter of a cent, at 1.5 kHz
    too (6 harmonics below 0.45x the rate). A 40-cent vibrato is left to pyin's median (refined, the
    comb would take one of the vibrato's extremes in the whole note's spectrum)."""
    k = np.round(1200 * np.log2(f0 / F0_RANGE[0]) / 10)
    between = F0_RANGE[0] * 2 ** ((k + 0.37) * 10 / 1200)
    tone = _harmonic_tone(between)
    cents = lambda hz: abs(1200 * np.log2(hz / between))  # noqa: E731
    assert cents(estimate_f0(tone, SR, refine=False)) > 3.0  # what pyin alone gives
    assert cents(estimate_f0(tone, SR)) < 0.25
    vibrato = _harmonic_tone(between, vibrato_cents=40.0)
    kept = estimate_f0(vibrato, SR)
    assert kept == estimate_f0(vibrato, SR, refine=False)
    assert cents(kept) < 12.0


def test_refine_keeps_the_estimate_when_there_is_nothing_to_refine():
    """Silence, one sample, and a sine farther than the window from the estimate (the best pitch at the
    window's edge): the estimate comes back unchanged. A window that is not positive is an error."""
    assert refine_f0(np.zeros(SR, np.float32), SR, 220.0) == 220.0
    assert refine_f0(np.zeros(1, np.float32), SR, 220.0) == 220.0
    off = 220.0 * 2 ** (30 / 1200)  # a sine 30 cents flat of the estimate: its peak is outside the window
    sine = (0.3 * np.sin(2 * np.pi * 220.0 * np.arange(SR) / SR)).astype(np.float32)
    assert refine_f0(sine, SR, off) == off
    assert abs(1200 * np.log2(refine_f0(sine, SR, 220.0 * 2 ** (7 / 1200)) / 220.0)) < 0.5  # inside: found
    with pytest.raises(ValueError, match="positive window"):
        refine_f0(_harmonic_tone(220.0), SR, 220.0, cents=0.0)


def test_short_audio_is_zero_padded():
    audio = prepare_audio(np.ones(1000, np.float32) * 0.5, SR, SR, 1.0)
    assert audio.shape == (SR,) and audio[999] == 0.5 and audio[-1] == 0.0


def test_missing_file(tmp_path):
    with pytest.raises(TargetError, match="not found"):
        load_audio(tmp_path / "nope.wav", SR, 1.0)
    with pytest.raises(TargetError, match="not found"):
        AudioTargets([tmp_path / "nope.wav"], SR, 1.0)


def test_non_audio_file(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 100)
    with pytest.raises(TargetError, match="could not read .*notes.wav as audio"):
        load_audio(p, SR, 1.0)


def test_empty_silent_and_nan_files(tmp_path):
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), SR)
    with pytest.raises(TargetError, match="empty"):
        load_audio(empty, SR, 1.0)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(SR, np.float32), SR)
    with pytest.raises(TargetError, match="silent"):
        load_audio(silent, SR, 1.0)
    nan = tmp_path / "nan.wav"
    data = np.full(SR, 0.1, np.float32)
    data[100] = np.nan
    soundfile.write(nan, data, SR, subtype="FLOAT")
    with pytest.raises(TargetError, match="NaN"):
        load_audio(nan, SR, 1.0)


def test_directory_and_arrays(tmp_path, pluck_wav):
    (tmp_path / "readme.txt").write_text("ignored")
    targets = AudioTargets(tmp_path, SR, 1.0)
    assert len(targets) == 1 and targets.names() == [str(pluck_wav)]
    t = targets.get(0)
    assert t.f0 == pytest.approx(196.0, rel=0.02) and t.description["kind"] == "file"
    arr = AudioTargets(np.stack([np.sin(2 * np.pi * 330 * np.arange(SR) / SR)] * 2).astype(np.float32), SR, 1.0)
    assert len(arr) == 2 and arr.get(1).f0 == pytest.approx(330.0, rel=0.01)
    with pytest.raises(TargetError, match="no audio files"):
        AudioTargets(tmp_path / "sub" if (tmp_path / "sub").mkdir() is None else None, SR, 1.0)
    with pytest.raises(TargetError, match="path or an array"):
        AudioTargets([42], SR, 1.0)
