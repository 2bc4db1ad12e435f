#!/usr/bin/env python
"""Amortised matching: `synthenv match` with its defaults (CMA-ES then Levenberg-Marquardt from the inverse
model's guesses) at a small budget against CMA-ES from a cold start at a large one, on an independent
yardstick.

    .venv/bin/python benchmarks/inverse_match.py [--synths fm,subtractive] [--n 16] [--seed S] [--budget 50]
        [--reference 1000] [--real-reference 200] [--backend nrt] [--sets fluidr3,timgm6mb]
        [--real-synths fm,auto] [--skip-real] [--skip-domain] [--json out.json]

In-domain: ``--n`` random patches of each synth (seed 20261125, not the datasets' seeds), rendered
by scsynth NRT and written as 1 s WAV files; each is matched by ``synthenv match T --synth S
--budget 50`` (the defaults), by ``--method inverse`` (the best-scored guess: one render), by
``--method cmaes --budget 50`` and by ``--method cmaes --budget 1000`` (cold starts). Real notes:
the General MIDI notes of ``benchmarks/match_instruments.py`` (two SoundFonts), the defaults at 50
renders against ``--method cmaes --budget 200`` (cold; ``--real-reference-init inverse``: from the
inverse model's starts, e.g. with ``--budget 200`` to compare the defaults with CMA-ES alone).
Every match is scored with the yardstick of ``match_instruments.py`` (librosa log-mel 2048/512, 128
bands, 80 dB below the pair's peak) between the target file and ``match.wav``. Printed: mean yardstick
per method, the ratio of means to the reference and the per-target ratios (mean, median), and wins.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from match_instruments import SOUNDFONTS, render_notes, yardstick  # noqa: E402

TARGET_SEED = 20261125


def domain_targets(synth: str, n: int, out: Path, backend: str, seed: int = TARGET_SEED) -> list[Path]:
    """``n`` random patches of ``synth`` rendered by ``backend`` (scsynth NRT by default) as WAVs."""
    from synthenv.backends import make_backend
    from synthenv.synths import get_synth

    spec = get_synth(synth)
    x = np.random.default_rng([seed, len(synth)]).random((n, spec.n_params))
    be = make_backend(backend)
    try:
        audio = be.render(spec, spec.denormalize(x)).audio
    finally:
        be.close()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, a in enumerate(audio):
        if np.sqrt(np.mean(a**2)) < 1e-4:  # a silent patch is no target (match refuses silent files)
            continue
        paths.append(out / f"{synth}_{i:02d}.wav")
        soundfile.write(paths[-1], a, be.sample_rate, subtype="FLOAT")
    return paths


def run(target: Path, out: Path, backend: str, **kw) -> tuple[float, dict]:
    from synthenv.agents.match import match

    t0 = time.perf_counter()
    best = match(target, backend=backend, out_dir=out, log=lambda *a: None, **kw)
    ref, sr = soundfile.read(target, dtype="float32")
    got, _ = soundfile.read(out / "match.wav", dtype="float32")
    n = min(len(got), len(ref))
    return yardstick(ref[:n], got[:n], sr), {"synth": best["synth"], "renders": best["renders"],
                                              "init": best.get("init"), "seconds": time.perf_counter() - t0}


def compare(label: str, notes: list[Path], methods: dict[str, dict], reference: str, backend: str, tmp: Path,
            rows: list) -> None:  # fmt: skip
    res: dict[str, list[float]] = {m: [] for m in methods}
    for note in notes:
        line = []
        for m, kw in methods.items():
            d, info = run(note, tmp / "out", backend, **kw)
            res[m].append(d)
            rows.append({"set": label, "note": note.stem, "method": m, "yardstick": d, **info})
            line.append(f"{m} {d:5.2f}")
        print(f"{label:<16} {note.stem:<16} " + "  ".join(line), flush=True)
    ref = np.array(res[reference])
    print(f"\n{label}: {len(notes)} targets, {backend} backend, yardstick dB (reference {reference})")
    print("| method | mean | ratio of means | mean ratio | median ratio | wins vs reference |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for m, v in res.items():
        v = np.array(v)
        r = v / np.maximum(ref, 1e-6)
        print(f"| {m} | {v.mean():.2f} | {v.mean() / ref.mean():.2f} | {r.mean():.2f} | {np.median(r):.2f} | "
              f"{int(np.sum(v <= ref))} of {len(v)} |")
    print(flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synths", default="fm,subtractive")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=TARGET_SEED, help="in-domain targets' seed (default %(default)s)")
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--reference", type=int, default=1000)
    ap.add_argument("--real-reference", type=int, default=200)
    ap.add_argument("--real-reference-init", default="cold", choices=["cold", "inverse"],
                    help="the real notes' reference CMA-ES starts cold (default) or from the inverse model's starts")
    ap.add_argument("--backend", default="nrt")
    ap.add_argument("--sets", default="fluidr3,timgm6mb")
    ap.add_argument("--real-synths", default="fm,auto")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-domain", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows: list = []
    b = args.budget
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if not args.skip_domain:
            for synth in args.synths.split(","):
                notes = domain_targets(synth, args.n, tmp / "domain" / synth, args.backend, args.seed)
                methods = {
                    f"default@{b}": {"synth": synth, "budget": b},
                    "inverse@1": {"synth": synth, "method": "inverse", "budget": 1},
                    f"cmaes@{b}": {"synth": synth, "method": "cmaes", "budget": b, "init": "cold"},
                    f"cmaes@{args.reference}": {"synth": synth, "method": "cmaes", "budget": args.reference,
                                                "init": "cold"},
                }
                compare(f"{synth} in-domain", notes, methods, f"cmaes@{args.reference}", args.backend, tmp, rows)
        if not args.skip_real:
            for name in args.sets.split(","):
                if not SOUNDFONTS[name][0].exists():
                    print(f"skipping {name}: apt-get install fluidsynth {SOUNDFONTS[name][1]}", file=sys.stderr)
                    continue
                notes = render_notes(tmp / "real" / name, soundfont=name)
                for synth in args.real_synths.split(","):
                    ref = f"cmaes@{args.real_reference}" + ("" if args.real_reference_init == "cold" else " (inverse)")
                    methods = {
                        f"default@{b}": {"synth": synth, "budget": b},
                        ref: {"synth": synth, "method": "cmaes", "budget": args.real_reference,
                              "init": args.real_reference_init},
                    }  # fmt: skip
                    compare(f"{name} {synth}", notes, methods, ref, args.backend, tmp, rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
