#!/usr/bin/env python
"""Per-candidate cost of scsynth NRT renders: one process per render vs one process per batch.

    .venv/bin/python benchmarks/nrt_batch.py [--n 64] [--synth fm]

Prints seconds per candidate for: one scsynth process per parameter set (naive), one process for
the whole batch, and the default (batch split across every core), side by side in one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from synthenv import get_synth
from synthenv.backends import make_backend


def timed(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="parameter sets (1 s each)")
    ap.add_argument("--synth", default="fm")
    ap.add_argument("--naive", type=int, default=16, help="renders timed for the naive per-process figure")
    args = ap.parse_args()
    spec = get_synth(args.synth)
    params = spec.denormalize(np.random.default_rng(0).random((args.n, spec.n_params)))
    one_proc = make_backend("nrt", processes=1)
    all_cores = make_backend("nrt")
    server = make_backend("nrt", server_features=True)
    one_proc.render(spec, params[:1])  # warm-up: page cache, numba
    naive = timed(lambda: [one_proc.render(spec, params[i : i + 1]) for i in range(args.naive)], 1) / args.naive
    batch1 = timed(lambda: one_proc.render(spec, params)) / args.n
    batchn = timed(lambda: all_cores.render(spec, params)) / args.n
    batchs = timed(lambda: server.render(spec, params)) / args.n
    print(f"{args.synth}, {args.n} one-second candidates at 22050 Hz ({all_cores.processes} cores)")
    print(f"  one process per render        {naive * 1000:7.2f} ms/candidate")
    print(f"  one process for the batch     {batch1 * 1000:7.2f} ms/candidate   ({naive / batch1:5.1f}x)")
    print(f"  batch split over all cores    {batchn * 1000:7.2f} ms/candidate   ({naive / batchn:5.1f}x)")
    print(f"  ... with server features      {batchs * 1000:7.2f} ms/candidate   ({naive / batchs:5.1f}x)")


if __name__ == "__main__":
    main()
