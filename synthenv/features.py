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

Server features are the frames of the analysis SynthDef (``sc/synthenv_analysis.scd``) that
scsynth computes in the nrt and live backends: per FFT frame (1024, hop 512), SC's 13 ``MFCC``,
``SpecCentroid``, ``SpecFlatness`` and ``Loudness``. :func:`scale_server_frames` brings them to
comparable ranges; their summary is the same segment mean (:func:`segment_means`). Server
features are not loudness-normalised (the server sees the synth's own level); audio-file targets
are played to the server at ``TARGET_RMS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numba
import numpy as np
import scipy.fft

from synthenv.threads import for_row_chunks

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
    out = np.empty_like(a)

    def rows(start: int, stop: int) -> None:
        x = a[start:stop]
        rms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64) / max(a.shape[1], 1))[:, None]
        gain = np.where(rms > 1e-6, target_rms / np.maximum(rms, 1e-12), 0.0).astype(np.float32)
        np.multiply(x, gain, out=out[start:stop])

    for_row_chunks(rows, a.shape[0])
    return out


STFT_ROWS = 16  # sounds per STFT call: temporaries stay in cache (measured: 256 sounds 53 -> 38 ms)


@cache
def _window(n_fft: int) -> np.ndarray:
    w = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    return (w / (w.sum() / 2.0)).astype(np.float32)  # a full-scale sine peaks at magnitude 1


def _stft(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Complex64 STFT ``[B, T, n_fft//2 + 1]``: Hann, centred frames (zero padded), ``T = 1 + N // hop``."""
    a = as_batch(audio)
    pad = n_fft // 2
    padded = np.pad(a, ((0, 0), (pad, pad)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    return scipy.fft.rfft(frames * _window(n_fft), axis=-1, workers=1)


@numba.njit(cache=True, nogil=True)
def _abs2(spec: np.ndarray, out: np.ndarray) -> None:
    for b in range(spec.shape[0]):
        for t in range(spec.shape[1]):
            for k in range(spec.shape[2]):
                z = spec[b, t, k]
                out[b, t, k] = z.real * z.real + z.imag * z.imag


def stft_power(audio: np.ndarray, n_fft: int = N_FFT, hop: int | None = None, sample_rate: int | None = None):
    """Power spectrogram ``|X|²``, float32 ``[B, T, n_fft//2 + 1]`` (default hop ``n_fft // 4``);
    a full-scale sine peaks at 1 (0 dB). Big batches are split over the cores. With
    ``sample_rate``, returns ``(power, logmel)``: the log-mel frames are computed in the same pass."""
    a = as_batch(audio)
    hop = hop or n_fft // 4
    out = np.empty((a.shape[0], 1 + a.shape[1] // hop, n_fft // 2 + 1), dtype=np.float32)
    logmel = None if sample_rate is None else np.empty((*out.shape[:2], N_MELS), dtype=np.float32)

    def rows(start: int, stop: int) -> None:
        for i in range(start, stop, STFT_ROWS):
            j = min(i + STFT_ROWS, stop)
            _abs2(_stft(a[i:j], n_fft, hop), out[i:j])
            if logmel is not None:
                logmel[i:j] = power_to_db(mel_power(out[i:j], sample_rate))

    for_row_chunks(rows, a.shape[0])
    return out if logmel is None else (out, logmel)


def stft_magnitude(audio: np.ndarray, n_fft: int = N_FFT, hop: int | None = None) -> np.ndarray:
    """Magnitude spectrogram ``|X|``, float32 ``[B, T, n_fft//2 + 1]`` (see :func:`stft_power`)."""
    return np.sqrt(stft_power(audio, n_fft, hop))


@numba.njit(cache=True, nogil=True)
def _project(power: np.ndarray, weights: np.ndarray, first: np.ndarray, last: np.ndarray, out: np.ndarray) -> None:
    for r in range(power.shape[0]):
        for m in range(weights.shape[1]):
            acc = 0.0
            for k in range(first[m], last[m]):
                acc += power[r, k] * weights[k, m]
            out[r, m] = acc


def mel_power(power: np.ndarray, sample_rate: int, n_mels: int = N_MELS) -> np.ndarray:
    """Mel-band power ``[..., n_mels]`` of a power spectrogram ``[..., n_fft//2 + 1]`` (float32, any
    ``n_fft``): the product with :func:`mel_matrix`, summed only over each band's non-zero bins."""
    weights = mel_matrix(sample_rate, 2 * (power.shape[-1] - 1), n_mels)
    nz = weights > 0
    first = np.argmax(nz, axis=0)
    last = weights.shape[0] - np.argmax(nz[::-1], axis=0)
    flat = np.ascontiguousarray(power.reshape(-1, power.shape[-1]))
    out = np.empty((flat.shape[0], weights.shape[1]), dtype=np.float32)
    _project(flat, weights, first, last, out)
    return out.reshape(*power.shape[:-1], weights.shape[1])


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

    ``audio`` is the loudness-normalised float32 ``[B, N]`` that the Python features are computed
    from (``None`` when only server features exist, as in the live backend); ``frames`` holds
    scaled server-feature frames ``[B, T, 16]`` when the backend computed them. ``source`` picks
    what :attr:`summary` is made of: ``"audio"`` or ``"server"``.
    """

    audio: np.ndarray | None
    sample_rate: int
    frames: np.ndarray | None = None
    source: str = "audio"
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.source not in ("audio", "server"):
            raise ValueError(f"feature source must be 'audio' or 'server', got {self.source!r}")
        if (self.audio if self.source == "audio" else self.frames) is None:
            raise ValueError(f"an analysis with source={self.source!r} needs its {self.source} data")

    def __len__(self) -> int:
        return (self.audio if self.audio is not None else self.frames).shape[0]

    def _need_audio(self) -> np.ndarray:
        if self.audio is None:
            raise ValueError("this feature needs audio, and this analysis has server features only")
        return self.audio

    def _cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def magnitude(self, n_fft: int = N_FFT, hop: int | None = None) -> np.ndarray:
        """Magnitude spectrogram ``[B, T, n_fft//2+1]`` (see :func:`stft_magnitude`)."""
        hop = hop or (HOP if n_fft == N_FFT else n_fft // 4)
        if (n_fft, hop) == (N_FFT, HOP):
            return self._cached(("mag", n_fft, hop), lambda: np.sqrt(self.power))
        return self._cached(("mag", n_fft, hop), lambda: stft_magnitude(self._need_audio(), n_fft, hop))

    @property
    def power(self) -> np.ndarray:
        """Power spectrogram ``[B, T, N_FFT//2+1]`` (hop ``HOP``), float32."""
        self._spectra()
        return self._cache["power"]

    def _spectra(self) -> None:
        if "power" not in self._cache:  # power and log-mel in one pass over the batch
            self._cache["power"], self._cache["logmel"] = stft_power(self._need_audio(), N_FFT, HOP, self.sample_rate)

    @property
    def power_db(self) -> np.ndarray:
        """Power spectrogram in dB, floored at ``FLOOR_DB``."""
        return self._cached("power_db", lambda: power_to_db(self.power))

    @property
    def logmel(self) -> np.ndarray:
        """Log-mel frames ``[B, T, N_MELS]`` in dB."""
        if "logmel" not in self._cache:
            self._spectra()
        return self._cache["logmel"]

    def logmel_at(self, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
        """Log-mel frames ``[B, T, n_mels]`` in dB at another resolution (hop ``n_fft // 4``)."""
        if (n_fft, n_mels) == (N_FFT, N_MELS):
            return self.logmel
        return self._cached(
            ("logmel", n_fft, n_mels),
            lambda: power_to_db(mel_power(stft_power(self._need_audio(), n_fft), self.sample_rate, n_mels)),
        )

    @property
    def mfcc(self) -> np.ndarray:
        """MFCC frames ``[B, T, N_MFCC]`` (orthonormal DCT-II of :attr:`logmel`)."""
        return self._cached(
            "mfcc", lambda: scipy.fft.dct(self.logmel, type=2, norm="ortho", axis=-1)[..., :N_MFCC].astype(np.float32)
        )

    @property
    def summary(self) -> np.ndarray:
        """Summary vector float32 ``[B, summary_size(source)]`` (see the module doc)."""
        if self.source == "server":
            return self._cached("summary", lambda: server_summary(self.frames))
        return self._cached("summary", lambda: audio_summary(self.mfcc))

    def replace_rows(self, rows: np.ndarray, other: Analysis) -> Analysis:
        """A copy with ``rows`` replaced by ``other``'s batch (in order); cached arrays both have are
        kept (and spliced), the others are dropped and recomputed on use."""

        def put(a, b):
            if a is None or b is None:
                return None
            a = a.copy()
            a[rows] = b
            return a

        out = Analysis(put(self.audio, other.audio), self.sample_rate, put(self.frames, other.frames), self.source)
        for key, value in self._cache.items():
            if key in other._cache:
                out._cache[key] = put(value, other._cache[key])
        return out

    def take(self, index: np.ndarray | int | slice) -> Analysis:
        """The analysis of a subset of the batch (cached arrays are sliced, not recomputed)."""
        idx = np.atleast_1d(np.arange(len(self))[index])
        sub = Analysis(
            None if self.audio is None else self.audio[idx],
            self.sample_rate,
            None if self.frames is None else self.frames[idx],
            self.source,
        )
        for key, value in self._cache.items():
            sub._cache[key] = value[idx]
        return sub


def analyze(
    audio: np.ndarray | None,
    sample_rate: int,
    *,
    normalize: bool = True,
    frames: np.ndarray | None = None,
    source: str = "audio",
) -> Analysis:
    """Analyse ``[N]``/``[B, N]`` audio (loudness-normalised first unless ``normalize=False``) and/or
    raw server frames ``[B, T, 16]`` (scaled here); ``source`` chooses what the summary uses."""
    a = None if audio is None else (loudness_normalize(audio) if normalize else as_batch(audio))
    f = None if frames is None else scale_server_frames(frames)
    return Analysis(a, int(sample_rate), f, source)


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


def summary_size(source: str = "audio") -> int:
    """Length of :attr:`Analysis.summary` for a feature source."""
    return N_SEGMENTS * (N_SERVER_FEATURES if source == "server" else N_MFCC)


# -- server features ------------------------------------------------------------------------------
SERVER_FFT = 1024
SERVER_HOP = 512
SERVER_FEATURES = (*(f"mfcc{i}" for i in range(13)), "centroid", "flatness", "loudness")
N_SERVER_FEATURES = len(SERVER_FEATURES)


def server_n_frames(n_samples: int) -> int:
    """How many analysis frames a sound of ``n_samples`` yields (one per ``SERVER_HOP``)."""
    return n_samples // SERVER_HOP


def scale_server_frames(raw: np.ndarray) -> np.ndarray:
    """Raw analysis frames ``[B, T, 16]`` -> scaled float32: MFCCs as SC gives them (about [-1, 2]),
    centroid as ``log2(Hz / 1000) / 2``, flatness as is (0..1), loudness in sones / 32. Pure scaling:
    the backends reject non-finite frames (``synthenv.supercollider.check_server_frames``)."""
    f = np.array(raw, dtype=np.float32)
    if f.ndim != 3 or f.shape[2] != N_SERVER_FEATURES:
        raise ValueError(f"server frames must be [B, T, {N_SERVER_FEATURES}], got shape {f.shape}")
    f[..., 13] = np.log2(np.maximum(f[..., 13], 20.0) / 1000.0) / 2.0
    f[..., 15] /= 32.0
    return f


def server_summary(frames: np.ndarray) -> np.ndarray:
    """Scaled server frames ``[B, T, 16]`` -> summary ``[B, N_SEGMENTS * 16]``, clipped."""
    return np.clip(segment_means(frames), -SUMMARY_CLIP, SUMMARY_CLIP).astype(np.float32)
