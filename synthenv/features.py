"""The Python feature extractor: audio -> spectrogram frames -> summary vector.

Batched and float32 throughout: audio is ``[B, N]`` (a single ``[N]`` is treated as ``B = 1``),
frames are ``[B, T, F]``. One analysis (:class:`Analysis`) computes each representation once and
caches it, so every distance and the observation share the same STFT.

Definitions (all at the env's sample rate):

* loudness normalisation: each sound is scaled to an RMS of ``TARGET_RMS`` (-20 dBFS); a silent
  sound (RMS < 1e-6) stays silent.
* power spectrogram: Hann window, centred frames (zero padded), ``|X|² / (Σw / 2)²`` so that a
  full-scale sine peaks at 1 (0 dB).
* log-mel: ``N_MELS`` triangular mel bands (librosa's Slaney mel scale, peak-1 triangles) over
  the power spectrogram, in dB, floored at ``FLOOR_DB``.
* MFCC: orthonormal DCT-II of the log-mel frames, first ``N_MFCC`` coefficients.
* summary: the scaled MFCC frames averaged over ``N_SEGMENTS`` equal time segments, so it keeps
  both timbre and the envelope's shape; clipped to ``[-SUMMARY_CLIP, SUMMARY_CLIP]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import scipy.fft

N_FFT = 1024
HOP = 256
N_MELS = 64
N_MFCC = 13
N_SEGMENTS = 8
FLOOR_DB = -100.0
TARGET_RMS = 0.1
SUMMARY_CLIP = 10.0
#: MFCC scaling for the summary: c0 -> (c0/sqrt(N_MELS) + C0_OFFSET) / C0_SCALE (a mean level in
#: dB, centred), the others -> c_k / CK_SCALE. Keeps every summary entry roughly in [-3, 3].
C0_OFFSET, C0_SCALE, CK_SCALE = 60.0, 30.0, 40.0


def as_batch(audio: np.ndarray) -> np.ndarray:
    """``[N]`` or ``[B, N]`` -> float32 ``[B, N]``."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"audio must be [N] or [B, N], got shape {a.shape}")
    return a


def loudness_normalize(audio: np.ndarray, target_rms: float = TARGET_RMS) -> np.ndarray:
    """Scale each sound of ``[B, N]`` to RMS ``target_rms``; silent sounds stay zero. float32."""
    a = as_batch(audio)
    rms = np.sqrt(np.mean(np.square(a, dtype=np.float64), axis=1, keepdims=True))
    gain = np.where(rms > 1e-6, target_rms / np.maximum(rms, 1e-12), 0.0)
    return (a * gain).astype(np.float32)


@cache
def _window(n_fft: int) -> np.ndarray:
    w = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    return (w / (w.sum() / 2.0)).astype(np.float32)  # a full-scale sine peaks at magnitude 1


def stft_magnitude(audio: np.ndarray, n_fft: int = N_FFT, hop: int | None = None) -> np.ndarray:
    """Magnitude spectrogram, float32 ``[B, T, n_fft//2 + 1]`` with ``T = 1 + N // hop`` (default
    hop ``n_fft // 4``); a full-scale sine peaks at 1."""
    a = as_batch(audio)
    hop = hop or n_fft // 4
    pad = n_fft // 2
    padded = np.pad(a, ((0, 0), (pad, pad)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    spec = scipy.fft.rfft(frames * _window(n_fft), axis=-1, workers=-1)
    return np.abs(spec).astype(np.float32)


@cache
def mel_matrix(sample_rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Mel filterbank ``[n_fft//2 + 1, n_mels]`` float32: peak-1 triangles on librosa's mel scale."""
    import librosa

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2, norm=None)
    return np.ascontiguousarray(fb.T, dtype=np.float32)


def power_to_db(power: np.ndarray) -> np.ndarray:
    """``10·log10(max(power, 10^(FLOOR_DB/10)))``, float32."""
    db = 10.0 * np.log10(np.maximum(power, np.float32(10.0 ** (FLOOR_DB / 10.0))))
    return np.maximum(db, np.float32(FLOOR_DB)).astype(np.float32)


@dataclass(eq=False)
class Analysis:
    """The analysis of a batch of sounds; representations are computed on first use and cached.

    ``audio`` is the loudness-normalised float32 ``[B, N]`` that everything is computed from.
    """

    audio: np.ndarray
    sample_rate: int
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.audio.shape[0]

    def _cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def magnitude(self, n_fft: int = N_FFT, hop: int | None = None) -> np.ndarray:
        """Magnitude spectrogram ``[B, T, n_fft//2+1]`` (see :func:`stft_magnitude`)."""
        hop = hop or (HOP if n_fft == N_FFT else n_fft // 4)
        return self._cached(("mag", n_fft, hop), lambda: stft_magnitude(self.audio, n_fft, hop))

    @property
    def power(self) -> np.ndarray:
        """Power spectrogram ``[B, T, N_FFT//2+1]``, float32."""
        return self._cached("power", lambda: np.square(self.magnitude()))

    @property
    def power_db(self) -> np.ndarray:
        """Power spectrogram in dB, floored at ``FLOOR_DB``."""
        return self._cached("power_db", lambda: power_to_db(self.power))

    @property
    def logmel(self) -> np.ndarray:
        """Log-mel frames ``[B, T, N_MELS]`` in dB."""
        return self._cached("logmel", lambda: power_to_db(self.power @ mel_matrix(self.sample_rate)))

    @property
    def mfcc(self) -> np.ndarray:
        """MFCC frames ``[B, T, N_MFCC]`` (orthonormal DCT-II of :attr:`logmel`)."""
        return self._cached(
            "mfcc", lambda: scipy.fft.dct(self.logmel, type=2, norm="ortho", axis=-1)[..., :N_MFCC].astype(np.float32)
        )

    @property
    def summary(self) -> np.ndarray:
        """Summary vector ``[B, N_SEGMENTS * N_MFCC]`` float32 (see the module doc)."""
        return self._cached("summary", lambda: audio_summary(self.mfcc))

    def take(self, index: np.ndarray | int | slice) -> Analysis:
        """The analysis of a subset of the batch (cached arrays are sliced, not recomputed)."""
        idx = np.atleast_1d(np.arange(len(self))[index])
        sub = Analysis(self.audio[idx], self.sample_rate)
        for key, value in self._cache.items():
            sub._cache[key] = value[idx]
        return sub


def analyze(audio: np.ndarray, sample_rate: int, *, normalize: bool = True) -> Analysis:
    """Analyse ``[N]`` or ``[B, N]`` audio; loudness-normalised first unless ``normalize=False``."""
    a = loudness_normalize(audio) if normalize else as_batch(audio)
    return Analysis(a, int(sample_rate))


def segment_means(frames: np.ndarray, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """Average ``[B, T, F]`` frames over ``n_segments`` equal time segments -> ``[B, n_segments * F]``.

    Shared by every feature source (Python frames here, scsynth analysis frames in the server
    backends), so that summaries are computed one way.
    """
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim != 3 or f.shape[1] < n_segments:
        raise ValueError(f"frames must be [B, T >= {n_segments}, F], got shape {f.shape}")
    edges = np.linspace(0, f.shape[1], n_segments + 1).round().astype(int)
    sums = np.add.reduceat(f, edges[:-1], axis=1)
    counts = np.diff(edges).astype(np.float32)[None, :, None]
    return (sums / counts).reshape(f.shape[0], -1)


def audio_summary(mfcc: np.ndarray) -> np.ndarray:
    """MFCC frames ``[B, T, N_MFCC]`` -> scaled, clipped summary ``[B, N_SEGMENTS * N_MFCC]``."""
    m = np.array(mfcc, dtype=np.float32)
    m[..., 0] = (m[..., 0] / np.sqrt(N_MELS) + C0_OFFSET) / C0_SCALE
    m[..., 1:] /= CK_SCALE
    return np.clip(segment_means(m), -SUMMARY_CLIP, SUMMARY_CLIP).astype(np.float32)


def summary_size() -> int:
    """Length of :attr:`Analysis.summary`."""
    return N_SEGMENTS * N_MFCC
