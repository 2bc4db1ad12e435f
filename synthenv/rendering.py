"""``synthenv.render``: parameter dicts in, audio out, through any backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from synthenv.backends import make_backend
from synthenv.spec import SynthSpec
from synthenv.synths import get_synth


def render(
    synth: str | SynthSpec,
    params: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
    *,
    backend: str = "numpy",
    sample_rate: int = 22050,
    duration: float = 1.0,
) -> np.ndarray:
    """Render one parameter dict (-> float32 ``[N]``) or a list of dicts (-> float32 ``[B, N]``).

    Values are physical (Hz, seconds, ...); missing names take the synth's defaults; unknown names,
    NaN and out-of-range values raise :class:`~synthenv.errors.ParameterError`.
    """
    spec = get_synth(synth)
    single = params is None or isinstance(params, Mapping)
    values = spec.from_dicts({} if params is None else params)
    engine = make_backend(backend, sample_rate=sample_rate, duration=duration)
    try:
        audio = engine.render(spec, values).audio
    finally:
        engine.close()
    return audio[0] if single else audio
