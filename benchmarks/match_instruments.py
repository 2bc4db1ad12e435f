#!/usr/bin/env python
"""`synthenv match` on notes of sampled real instruments: CMA-ES vs the best of as many random patches.

    .venv/bin/python benchmarks/match_instruments.py [--folder DIR] [--budget 200] [--synths fm,subtractive,additive]

Without ``--folder`` it renders 20 General MIDI instruments (one 1 s note each) with fluidsynth from
the FluidR3 GM SoundFont (MIT licence; Debian: ``apt-get install fluidsynth fluid-soundfont-gm``),
or, when fluidsynth is absent, uses the five notes shipped in ``synthenv/data/instruments``. For every note and
synth it runs ``match(method="cmaes", budget=B)`` and the best of ``B`` random patches (pitch fixed
from the note in both), and prints their log-mel L1 and the ratio (below 1: CMA-ES is better).
``--render DIR`` only writes the notes (22,050 Hz mono WAVs) into DIR.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
#: name -> (General MIDI program, MIDI note)
INSTRUMENTS = {
    "piano": (0, 60), "epiano": (4, 64), "marimba": (12, 67), "organ": (19, 57), "accordion": (21, 64),
    "nylon_guitar": (24, 52), "bass": (33, 40), "violin": (40, 69), "cello": (42, 48), "harp": (46, 59),
    "strings": (48, 62), "choir": (52, 60), "trumpet": (56, 65), "trombone": (57, 53), "alto_sax": (65, 61),
    "oboe": (68, 72), "clarinet": (71, 58), "flute": (73, 76), "sitar": (104, 55), "steel_drums": (114, 70),
}  # fmt: skip


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def midi_note(program: int, note: int, seconds: float = 1.0, velocity: int = 100) -> bytes:
    """A type-0 MIDI file: program change, one note of ``seconds`` (120 bpm, 480 ticks per beat)."""
    ticks = int(round(seconds * 960))
    track = (
        _vlq(0) + bytes([0xC0, program]) + _vlq(0) + bytes([0x90, note, velocity])
        + _vlq(ticks) + bytes([0x80, note, 0]) + _vlq(0) + b"\xff\x2f\x00"
    )  # fmt: skip
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track


def render_notes(out_dir: Path, names: list[str] | None = None, sample_rate: int = 22050) -> list[Path]:
    """Render each instrument's note with fluidsynth; mono, ``sample_rate``, 1.2 s, peak -3 dBFS."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise SystemExit("needs fluidsynth and the FluidR3 GM SoundFont: apt-get install fluidsynth fluid-soundfont-gm")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(INSTRUMENTS):
            program, note = INSTRUMENTS[name]
            mid, wav = Path(tmp) / f"{name}.mid", Path(tmp) / f"{name}.wav"
            mid.write_bytes(midi_note(program, note))
            cmd = ["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(sample_rate), str(SOUNDFONT), str(mid)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            audio, sr = soundfile.read(wav, dtype="float32", always_2d=True)
            mono = audio.mean(axis=1)[: int(1.2 * sr)]
            mono *= 10 ** (-3 / 20) / max(float(np.abs(mono).max()), 1e-9)
            paths.append(out_dir / f"{name}.wav")
            soundfile.write(paths[-1], mono, sr, subtype="PCM_16")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, help="WAV notes to match (default: render them, see above)")
    ap.add_argument("--render", type=Path, metavar="DIR", help="only render the notes into DIR")
    ap.add_argument("--only", help="comma-separated instrument names to render")
    ap.add_argument("--synths", default="fm,subtractive,additive")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    only = args.only.split(",") if args.only else None
    if args.render:
        for p in render_notes(args.render, only):
            print(p)
        return

    from synthenv.agents.match import match, random_patches_distance
    from synthenv.samples import INSTRUMENTS_DIR

    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            files = sorted(args.folder.glob("*.wav"))
        elif shutil.which("fluidsynth") and SOUNDFONT.exists():
            files = render_notes(Path(tmp) / "notes", only)
        else:
            print(f"fluidsynth or {SOUNDFONT} missing: using the notes in {INSTRUMENTS_DIR}", file=sys.stderr)
            files = sorted(INSTRUMENTS_DIR.glob("*.wav"))
        synths = args.synths.split(",")
        print(f"cmaes@{args.budget} / best of {args.budget} random patches, log-mel L1 (dB), {args.backend} backend")
        print(f"{'note':<14}" + "".join(f"{s:>26}" for s in synths))
        rows = []
        for f in files:
            cells = []
            for s in synths:
                best = match(f, synth=s, method="cmaes", budget=args.budget, backend=args.backend,
                             out_dir=Path(tmp) / "out" / f"{f.stem}_{s}", log=lambda *a: None)  # fmt: skip
                rnd = random_patches_distance(f, s, args.budget, backend=args.backend)
                rows.append({"note": f.stem, "synth": s, "cmaes": best["distance"], "random": rnd,
                             "ratio": best["distance"] / rnd, "f0": best["f0"]})  # fmt: skip
                cells.append(f"{best['distance']:6.2f} / {rnd:6.2f} = {best['distance'] / rnd:4.2f}")
            print(f"{f.stem:<14}" + "".join(f"{c:>26}" for c in cells), flush=True)
    print("mean ratio: " + ", ".join(
        f"{s} {np.mean([r['ratio'] for r in rows if r['synth'] == s]):.3f}"
        f" (worst {max(r['ratio'] for r in rows if r['synth'] == s):.2f})" for s in synths))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
