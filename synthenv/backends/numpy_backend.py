"""The numpy backend: each synth's pure-numpy surrogate of its SynthDef."""

from __future__ import annotations

import numpy as np

from synthenv.backends import Rendered
from synthenv.errors import BackendError
from synthenv.spec import SynthSpec
from synthenv.threads import for_row_chunks


class NumpyBackend:
    """Renders with the spec's numpy surrogate; audio only (features come from the Python extractor)."""

    name = "numpy"
    feature_sources = ("audio",)

    def __init__(self, sample_rate: int = 22050, duration: float = 1.0, server_features: bool = False) -> None:
        if server_features:
            raise BackendError(
                "the numpy backend has no server features: use features='audio', or backend='nrt' for scsynth's"
            )
        self.sample_rate = sample_rate
        self.duration = duration

    @property
    def n_samples(self) -> int:
        return int(round(self.sample_rate * self.duration))

    def render(self, spec: SynthSpec, params: np.ndarray) -> Rendered:
        p = spec.validate(params)
        audio = np.empty((p.shape[0], self.n_samples), dtype=np.float32)

        def rows(start: int, stop: int) -> None:  # big batches: one chunk of rows per core
            out = np.asarray(spec.surrogate(p[start:stop], self.sample_rate, self.n_samples), dtype=np.float32)
            if out.shape != (stop - start, self.n_samples):
                expected = (stop - start, self.n_samples)
                raise BackendError(f"synth {spec.name!r} surrogate returned shape {out.shape}, expected {expected}")
            audio[start:stop] = out

        for_row_chunks(rows, p.shape[0])
        if not np.isfinite(audio).all():
            raise BackendError(f"synth {spec.name!r} surrogate produced NaN or inf samples")
        return Rendered(audio=audio)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"NumpyBackend(sample_rate={self.sample_rate}, duration={self.duration})"
