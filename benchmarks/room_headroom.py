#!/usr/bin/env python
"""How much closer would `synthenv match`'s real-note matches be with a room? A measurement, not a feature.

    .venv/bin/python benchmarks/room_headroom.py [--sets fluidr3,timgm6mb,csound] [--budget 200] [--json out.json]

The notes of ``benchmarks/match_instruments.py`` (12 instruments per SoundFont; FluidSynth renders them
with its reverberation on, as rooms colour real recordings) are matched by ``synthenv match NOTE
--synth auto`` (the defaults, numpy backend). Each match's audio is then convolved with exponentially
decaying white noise (decay time ``tau``, a seeded impulse response) and mixed in at ``mix`` dB below the
dry sound; the closest of a small grid of (tau, mix), chosen per note on the yardstick of
``match_instruments.py``, is reported with the dry match, on the yardstick and on ``audible``. The
grid is chosen after the search, with the synth's parameters fixed: a lower bound on what a room the
search could tune would give.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from match_instruments import INSTRUMENTS, at_match, render_notes, yardstick  # noqa: E402

TAUS = (0.08, 0.2, 0.5, 1.0, 2.0)  # s: energy decays by 1/e in tau/2
MIXES = (-40, -30, -24, -18, -12, -6)  # dB of the wet sound below the dry one (at equal RMS)
NOTES = "piano,nylon_guitar,bass,violin,cello,trumpet,trombone,alto_sax,oboe,clarinet,flute,organ"


def room(audio: np.ndarray, tau: float, mix_db: float, sr: int, seed: int = 0) -> np.ndarray:
    """``audio`` plus its convolution with decaying noise (the wet part at the dry part's RMS, times mix)."""
    from scipy.signal import fftconvolve

    t = np.arange(int(min(3.0, 5 * tau) * sr)) / sr
    ir = np.random.default_rng(seed).standard_normal(len(t)) * np.exp(-t / tau)
    wet = fftconvolve(audio, ir)[: len(audio)]
    wet *= np.sqrt(np.mean(audio**2)) / max(float(np.sqrt(np.mean(wet**2))), 1e-12)
    return audio + 10 ** (mix_db / 20) * wet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="fluidr3,timgm6mb,csound")
    ap.add_argument("--only", default=NOTES, help=f"instruments (of {', '.join(INSTRUMENTS)})")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from synthenv import distances
    from synthenv.agents.match import match
    from synthenv.features import analyze

    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for set_name in args.sets.split(","):
            for note in render_notes(tmp / set_name, args.only.split(","), soundfont=set_name):
                best = match(note, synth="auto", budget=args.budget, backend="numpy", out_dir=tmp / "out",
                             log=lambda *a: None)  # fmt: skip
                env, x = at_match(note, best, "audible", "numpy")
                try:
                    _, an = env.score(x[None])
                    target, dry, sr = env.target_analysis.audio[0], an.audio[0], env.sample_rate
                    wets = {(tau, mix): room(dry, tau, mix, sr) for tau in TAUS for mix in MIXES}
                    y, (tau, mix) = min((yardstick(target, w, sr), k) for k, w in wets.items())
                    wet = analyze(wets[tau, mix], sr)
                    ref = env.target_analysis
                    row = {"set": set_name, "note": note.stem, "synth": best["synth"],
                           "yardstick": yardstick(target, dry, sr), "audible": float(distances.audible(ref, an)[0]),
                           "room_yardstick": y, "room_audible": float(distances.audible(ref, wet)[0]),
                           "tau": tau, "mix_db": mix}  # fmt: skip
                finally:
                    env.close()
                rows.append(row)
                print(f"{set_name:<9} {note.stem:<13} {row['synth']:<12} yardstick {row['yardstick']:5.2f} -> "
                      f"{y:5.2f}  audible {row['audible']:5.2f} -> {row['room_audible']:5.2f}  (tau {tau} s, "
                      f"{mix} dB)", flush=True)  # fmt: skip
    print()
    print("| set | yardstick, dry | with the room | audible, dry | with the room | notes closer on the yardstick |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for set_name in args.sets.split(","):
        sel = [r for r in rows if r["set"] == set_name]
        m = {k: np.mean([r[k] for r in sel]) for k in ("yardstick", "room_yardstick", "audible", "room_audible")}
        closer = sum(r["room_yardstick"] < r["yardstick"] - 1e-9 for r in sel)
        print(f"| {set_name} | {m['yardstick']:.2f} | {m['room_yardstick']:.2f} | {m['audible']:.2f} | "
              f"{m['room_audible']:.2f} | {closer} of {len(sel)} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
