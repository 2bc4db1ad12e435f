#!/usr/bin/env python
"""Print the shipped inverse models' held-out reports (stored in each model file by fit-inverse) as a
Markdown table, and the command that reproduces each model.

    .venv/bin/python benchmarks/inverse_report.py [MODEL.npz ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from synthenv.inverse import InverseModel, shipped_model_path
from synthenv.synths import BUILTIN_SYNTHS


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or [shipped_model_path(s) for s in BUILTIN_SYNTHS]
    models = [(p, InverseModel.load(p)) for p in paths if p is not None]
    print("| synth | rows | epochs | size | param MAE: guess / closest of K / random | logmel_l1 dB: guess (1 render) "
          "/ closest of K guesses / closest of K bank rows / best of K random | audible dB: the same |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for p, m in models:
        r, k, tr = m.meta["report"], m.hypotheses, m.meta["training"]
        cells = [
            f"{r['param_mae_first']:.3f} / {r[f'param_mae_best_of_{k}']:.3f} / {r['param_mae_random']:.3f}",
            *(
                f"{r[f'guess_{d}_first']:.2f} / {r[f'guess_{d}_best_of_{k}']:.2f} / {r[f'bank_{d}_best_of_{k}']:.2f}"
                f" / {r[f'random_{d}_best_of_{k}']:.2f}"
                for d in ("logmel_l1", "audible")
            ),
        ]
        print(f"| {m.synth} | {tr['rows']:,} | {tr['epochs']} | {p.stat().st_size / 1e6:.1f} MB | " + " | ".join(cells)
              + " |")  # fmt: skip
    print()
    for _, m in models:
        print(f"- {m.synth} ({m.meta['training']['seconds']:.0f} s of training): `{m.meta['reproduce']}`")


if __name__ == "__main__":
    main()
