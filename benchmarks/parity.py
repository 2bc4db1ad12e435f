#!/usr/bin/env python
"""numpy surrogate vs scsynth NRT: mean log-mel L1 of the same params as a fraction of random pairs.

.venv/bin/python benchmarks/parity.py [--n 100] [--seed 0]
"""

from __future__ import annotations

import argparse

from synthenv.parity import parity_fraction
from synthenv.synths import available_synths

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--n", type=int, default=100)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()
print(f"{'synth':<12} {'same params (dB)':>17} {'random pairs (dB)':>18} {'fraction':>10}")
for synth in available_synths():
    r = parity_fraction(synth, args.n, args.seed)
    print(f"{synth:<12} {r['same_params_db']:>17.4f} {r['random_pairs_db']:>18.2f} {r['fraction']:>10.5f}")
