"""Measured parity between backends: how close the numpy surrogate is to scsynth."""

from __future__ import annotations

import numpy as np

from synthenv import distances
from synthenv.features import analyze
from synthenv.rendering import render
from synthenv.synths import get_synth


def parity_fraction(
    synth: str, n: int = 100, seed: int = 0, a: str = "numpy", b: str = "nrt", sample_rate: int = 22050
) -> dict:
    """Render ``n`` random parameter sets with backends ``a`` and ``b``; return the mean log-mel L1
    between the two renders of the same params (dB), the mean log-mel L1 between random pairs of
    ``b``'s renders (dB), and their ratio ``fraction`` (0 = identical; 1 = as far apart as random patches)."""
    spec = get_synth(synth)
    rows = [spec.to_dict(spec.denormalize(x)) for x in np.random.default_rng(seed).random((n, spec.n_params))]
    an_a = analyze(render(synth, rows, backend=a, sample_rate=sample_rate), sample_rate)
    an_b = analyze(render(synth, rows, backend=b, sample_rate=sample_rate), sample_rate)
    same = float(distances.compute("logmel_l1", an_b, an_a).mean())
    half = n // 2
    pairs = float(distances.compute("logmel_l1", an_b.take(slice(0, half)), an_b.take(slice(half, 2 * half))).mean())
    return {"synth": synth, "n": n, "same_params_db": same, "random_pairs_db": pairs, "fraction": same / pairs}
