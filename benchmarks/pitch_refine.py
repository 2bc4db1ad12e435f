#!/usr/bin/env python
"""How far the pitch a match fixes is from the true one: pyin's median alone against the refined pitch
(:func:`synthenv.targets.refine_f0`), on random patches of synths with a known ``freq``.

    .venv/bin/python benchmarks/pitch_refine.py [--n 32] [--synths subtractive,additive] [--seed 0]

Prints, per synth, the absolute error in cents of pyin's estimate and of the refined one (mean, median,
max) over the patches pyin finds a pitch in and reads within a quarter tone (octave errors are pyin's
and are left alone by the refinement: it looks 25 cents either side). additive patches are drawn
without inharmonicity (``inharm = 0``), so that ``freq`` is the partials' spacing, and without vibrato
(``vdepth = 0``) or chorus (``chorus`` at its least, whose swept delays move the pitch too), so that it is
the pitch heard throughout; a second row draws the vibrato and the chorus too (up to 50 cents of vibrato at
any phase: a short pluck's pitch is then wherever the vibrato was as it died, not ``freq``).
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    from synthenv.synths import get_synth
    from synthenv.targets import estimate_f0

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--synths", default="subtractive,additive")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-rate", type=int, default=22050)
    args = ap.parse_args()
    sr = args.sample_rate
    print("| synth | patches | pyin: mean / median / max cents | refined: mean / median / max cents |")
    print("| --- | ---: | ---: | ---: |")
    rows = []
    for name in args.synths.split(","):
        rows.append((name, name, True))
        if "vdepth" in get_synth(name).names:
            rows.append((f"{name}, random vibrato and chorus", name, False))
    for label, name, steady in rows:
        spec = get_synth(name)
        x = np.random.default_rng(args.seed).random((args.n, spec.n_params))
        if "inharm" in spec.names:
            x[:, spec.index("inharm")] = 0.0
        for still in ("vdepth", "chorus"):
            if steady and still in spec.names:
                x[:, spec.index(still)] = 0.0
        params = spec.denormalize(x)
        audio = spec.surrogate(params, sr, sr)
        errors = []
        for p, a in zip(params, audio, strict=True):
            true = p[spec.index("freq")]
            pyin = estimate_f0(a, sr, refine=False)
            if pyin is None or abs(1200 * np.log2(pyin / true)) > 50:
                continue
            errors.append([abs(1200 * np.log2(f / true)) for f in (pyin, estimate_f0(a, sr))])
        e = np.array(errors).reshape(-1, 2)
        cell = [f"{e[:, j].mean():.2f} / {np.median(e[:, j]):.2f} / {e[:, j].max():.2f}" if len(e) else "-"
                for j in (0, 1)]  # fmt: skip
        print(f"| {label} | {len(e)} of {args.n} | {cell[0]} | {cell[1]} |", flush=True)


if __name__ == "__main__":
    main()
