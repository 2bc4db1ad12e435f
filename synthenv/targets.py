"""Where target sounds come from: random parameters of the env's synth, or audio (files, folders, arrays).

Audio targets are prepared one way (:func:`prepare_audio`): mixed to mono, resampled to the env's
rate, leading silence trimmed, cut or zero-padded to the env's duration. Loudness normalisation
happens in the feature extractor, for targets and candidates alike. Their pitch is estimated
with ``librosa.pyin`` and refined to a fraction of a cent on the harmonics (:func:`estimate_f0`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthenv.errors import TargetError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
SILENCE_PEAK = 1e-4  # a target whose peak is below this (-80 dBFS) is treated as silent
TRIM_DB = 40.0  # leading samples below the peak by more than this are trimmed
F0_RANGE = (40.0, 2000.0)
REFINE_CENTS = 25.0  # refine_f0 looks this far (cents) either side of pyin's estimate (its grid: 10 cents)
REFINE_STEP = 0.25  # cents between the pitches refine_f0 tries
REFINE_HARMONICS = 40  # at most this many harmonics are summed
REFINE_MAX_SPREAD = 15.0  # cents: a pitch track wider (interquartile; pyin steps 10) is a vibrato: not refined


@dataclass
class Target:
    """A target sound: float32 audio ``[N]`` at the env's rate (None when a backend gave only server
    features), and what is known about it."""

    audio: np.ndarray | None
    f0: float | None
    description: dict = field(default_factory=dict)
    params: np.ndarray | None = None  # physical [P] when the target was rendered from known params
    frames: np.ndarray | None = None  # raw server-feature frames [1, T, 16], when the backend made them


def prepare_audio(
    audio: np.ndarray, source_rate: int, sample_rate: int, duration: float, name: str = "audio"
) -> np.ndarray:
    """Mono-mix ``[N]``, ``[N, C]`` (soundfile layout) audio, resample, trim leading silence, cut/pad
    to ``duration``. Raises :class:`TargetError` for empty, NaN or silent audio. float32 ``[round(sr·dur)]``."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1)
    if a.ndim != 1:
        raise TargetError(f"{name}: expected mono [N] or multichannel [N, C] audio, got shape {a.shape}")
    if a.size == 0:
        raise TargetError(f"{name}: the audio is empty (0 samples)")
    if not np.isfinite(a).all():
        raise TargetError(f"{name}: the audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(a)))
    if peak < SILENCE_PEAK:
        raise TargetError(f"{name}: the audio is silent (peak {peak:.2g}, below {SILENCE_PEAK:g}); nothing to match")
    if source_rate != sample_rate:
        import librosa

        a = librosa.resample(a, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq").astype(np.float32)
    onset = int(np.argmax(np.abs(a) >= peak * 10 ** (-TRIM_DB / 20)))
    a = a[max(0, onset - int(0.005 * sample_rate)) :]
    n = int(round(sample_rate * duration))
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, a.size)] = a[:n]
    return out


def load_audio(path: str | Path, sample_rate: int, duration: float) -> np.ndarray:
    """Read an audio file and :func:`prepare_audio` it. Raises :class:`TargetError` with the reason."""
    p = Path(path)
    if not p.exists():
        raise TargetError(f"target file not found: {p}")
    if p.is_dir():
        raise TargetError(f"{p} is a directory; pass it as targets= to use every audio file inside")
    import soundfile

    try:
        data, rate = soundfile.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError/TypeError by format
        raise TargetError(f"could not read {p} as audio ({exc}); supported: {', '.join(AUDIO_EXTENSIONS)}") from None
    return prepare_audio(data, int(rate), sample_rate, duration, name=str(p))


def estimate_f0(
    audio: np.ndarray, sample_rate: int, fmin: float = F0_RANGE[0], fmax: float = F0_RANGE[1], refine: bool = True
) -> float | None:
    """Median f0 (Hz) of the voiced frames found by ``librosa.pyin``, refined on the harmonics
    (:func:`refine_f0`) where the pitch is steady: its frames' interquartile range within
    :data:`REFINE_MAX_SPREAD` cents (``refine=False``: pyin's own median always); ``None`` when nothing
    is voiced. A vibrato spreads each harmonic between its two extremes, and where those are resolved
    (20 cents at 700 Hz and above) the whole note's spectrum has two peaks per harmonic, one of which
    the comb would take (12 cents off); the median of the track is the vibrato's centre."""
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    frame = 2048 if sample_rate <= 24000 else 4096
    f0, voiced, _ = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame)
    good = f0[voiced & np.isfinite(f0)] if voiced is not None else np.array([])
    if good.size == 0:
        return None
    median = float(np.median(good))
    if not refine:
        return median
    q25, q75 = np.percentile(good, [25, 75])
    return refine_f0(y, sample_rate, median) if 1200.0 * np.log2(q75 / q25) < REFINE_MAX_SPREAD else median


def refine_f0(audio: np.ndarray, sample_rate: int, f0: float, cents: float = REFINE_CENTS) -> float:
    """The pitch within ``cents`` of ``f0`` whose harmonics (up to :data:`REFINE_HARMONICS`, below 0.45x
    the sample rate) carry the most magnitude in the whole sound's spectrum (Hann window, zero-padded
    8x), in steps of :data:`REFINE_STEP` cents; ``f0`` itself where that pitch is at the edge of the
    window (pyin more than ``cents`` off, or no harmonic peak near it) or the sound is silent.

    pyin's pitches lie on a grid of 10 cents, so its median can be 5 cents off (and more with
    vibrato). At the 20th harmonic 5 cents is 100, a partial in the next bin of a 4096-point
    spectrum: on sampled real notes a match at pyin's pitch was up to 0.9 dB (11%) farther than at
    this one (``benchmarks/match_instruments.py``). On random patches with a known pitch
    (``benchmarks/pitch_refine.py``) pyin is 3-4 cents off on average and this well under one.
    Stretched partials (a piano's) pull it a few cents sharp of the fundamental: the magnitudes weigh
    every harmonic as it sounds."""
    if not cents > 0:
        raise ValueError(f"refine_f0 needs a positive window in cents, got {cents!r}")
    y = np.asarray(audio, dtype=np.float64)
    if y.size < 2 or not np.isfinite(f0) or f0 <= 0:
        return f0
    n_fft = 1 << int(np.ceil(np.log2(y.size * 8)))
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size), n_fft))
    offsets = np.arange(-cents, cents + REFINE_STEP / 2, REFINE_STEP)
    pitches = f0 * 2.0 ** (offsets / 1200.0)
    k = np.arange(1, max(1, min(REFINE_HARMONICS, int(0.45 * sample_rate / pitches[-1]))) + 1)
    bins = pitches[:, None] * k[None, :] * (n_fft / sample_rate)
    score = np.interp(bins, np.arange(spectrum.size), spectrum).sum(axis=1)
    best = int(np.argmax(score))
    return float(pitches[best]) if score[best] > 0 and 0 < best < len(pitches) - 1 else f0


def find_audio_files(folder: Path) -> list[Path]:
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise TargetError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in directory {folder}")
    return files


class AudioTargets:
    """A fixed list of audio targets (files, folders, arrays), loaded and pitch-tracked on first use.

    ``items`` is a path (file or folder), an array (``[N]`` one sound, ``[K, N]`` K sounds, at
    ``sample_rate``), or a list of those. Files are checked for existence up front.
    """

    def __init__(self, items, sample_rate: int, duration: float) -> None:
        self.sample_rate = sample_rate
        self.duration = duration
        self._sources: list[Path | np.ndarray] = []
        for item in self._flatten(items):
            if isinstance(item, np.ndarray):
                self._sources.append(item)
                continue
            p = Path(item)
            if p.is_dir():
                self._sources.extend(find_audio_files(p))
            elif p.exists():
                self._sources.append(p)
            else:
                raise TargetError(f"target file not found: {p}")
        if not self._sources:
            raise TargetError("no targets given: pass 'random', a file, a directory, an array, or a list of those")
        self._cache: dict[int, Target] = {}

    @staticmethod
    def _flatten(items) -> list:
        if isinstance(items, str | Path):
            return [items]
        if isinstance(items, np.ndarray):
            if items.ndim == 1:
                return [items]
            if items.ndim == 2:
                return list(items)
            raise TargetError(f"target arrays must be [N] or [K, N], got shape {items.shape}")
        if isinstance(items, Sequence):
            out = []
            for it in items:
                if isinstance(it, np.ndarray) and it.ndim != 1:
                    raise TargetError(f"each target array in a list must be [N], got shape {it.shape}")
                if not isinstance(it, str | Path | np.ndarray):
                    raise TargetError(f"a target must be a path or an array, got {type(it).__name__}")
                out.append(it)
            return out
        raise TargetError(f"targets must be 'random', a path, an array or a list, got {type(items).__name__}")

    def __len__(self) -> int:
        return len(self._sources)

    def names(self) -> list[str]:
        return [str(s) if isinstance(s, Path) else f"array[{i}]" for i, s in enumerate(self._sources)]

    def get(self, i: int) -> Target:
        """Target ``i``, loaded, prepared and pitch-tracked once."""
        if i not in self._cache:
            src = self._sources[i]
            if isinstance(src, Path):
                audio = load_audio(src, self.sample_rate, self.duration)
                desc = {"kind": "file", "path": str(src)}
            else:
                audio = prepare_audio(src, self.sample_rate, self.sample_rate, self.duration, name=f"target array {i}")
                desc = {"kind": "array", "index": i}
            f0 = estimate_f0(audio, self.sample_rate)
            desc["f0"] = f0
            self._cache[i] = Target(audio=audio, f0=f0, description=desc)
        return self._cache[i]
