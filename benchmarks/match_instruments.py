#!/usr/bin/env python
"""`synthenv match` on notes of sampled real instruments: CMA-ES vs the best of as many random patches.

    .venv/bin/python benchmarks/match_instruments.py [--sets fluidr3,timgm6mb] [--budget 200]
        [--synths fm,subtractive,additive,auto] [--distances audible,logmel_l1] [--init cold|inverse]
        [--method cmaes|cmaes_lm|hillclimb|random] [--seed N] [--json out.json]

Sets of 20 General MIDI instruments (one 1 s note each), rendered with fluidsynth from SoundFonts of
different origin: FluidR3 GM (Debian ``fluid-soundfont-gm``) and TimGM6mb (Debian ``timgm6mb-soundfont``),
and with ``--sets ...,csound`` csound's GM bank (Debian ``csound-soundfont``); ``--folder DIR`` matches WAV
files instead. For every note, synth and
objective distance it runs ``match(method="cmaes", budget=B, distance=D)`` (or ``--method``; ``auto``: every synth
probed, the rest of the budget on the closest) and the best of ``B`` random patches on the same
objective (pitch fixed from the note in both; for ``auto``, of the synth ``auto`` chose). Every
result is re-measured with the project's distances and with an independent yardstick (librosa
log-mel, 2048/512, 128 bands, 80 dB below the pair's peak), and the script prints per set, synth
and objective: mean distances, the mean ratio to the random patches (their best on the objective,
measured on the objective and on the yardstick; and their best on the yardstick itself), and wins.
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

SOUNDFONTS = {  # name -> (path, Debian package)
    "fluidr3": (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "fluid-soundfont-gm"),
    "timgm6mb": (Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), "timgm6mb-soundfont"),
    "csound": (Path("/usr/share/sounds/sf2/sf_GMbank.sf2"), "csound-soundfont"),  # a third origin: csound's GM bank
}
SOUNDFONT = SOUNDFONTS["fluidr3"][0]
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


def render_notes(out_dir: Path, names: list[str] | None = None, sample_rate: int = 22050,
                 soundfont: str = "fluidr3") -> list[Path]:  # fmt: skip
    """Render each instrument's note with fluidsynth; mono, ``sample_rate``, 1.2 s, peak -3 dBFS."""
    sf, package = SOUNDFONTS[soundfont]
    if shutil.which("fluidsynth") is None or not sf.exists():
        raise SystemExit(f"needs fluidsynth and {sf}: apt-get install fluidsynth {package}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(INSTRUMENTS):
            program, note = INSTRUMENTS[name]
            mid, wav = Path(tmp) / f"{name}.mid", Path(tmp) / f"{name}.wav"
            mid.write_bytes(midi_note(program, note))
            cmd = ["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(sample_rate), str(sf), str(mid)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            audio, sr = soundfile.read(wav, dtype="float32", always_2d=True)
            mono = audio.mean(axis=1)[: int(1.2 * sr)]
            mono *= 10 ** (-3 / 20) / max(float(np.abs(mono).max()), 1e-9)
            paths.append(out_dir / f"{name}.wav")
            soundfile.write(paths[-1], mono, sr, subtype="PCM_16")
    return paths


def yardstick(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """An independent spectral distance (dB): librosa log-mel (2048/512, 128 bands) of both sounds at the
    same RMS, floored 80 dB below the louder one's peak; mean absolute difference."""
    import librosa

    def mel_db(x: np.ndarray) -> np.ndarray:
        x = x / max(float(np.sqrt(np.mean(x**2))), 1e-9) * 0.1
        return 10 * np.log10(np.maximum(librosa.feature.melspectrogram(y=x, sr=sr, n_fft=2048, hop_length=512,
                                                                       n_mels=128), 1e-20))  # fmt: skip

    ma, mb = mel_db(a), mel_db(b)
    floor = max(ma.max(), mb.max()) - 80.0
    return float(np.mean(np.abs(np.maximum(ma, floor) - np.maximum(mb, floor))))


def score_all(env, x: np.ndarray) -> dict[str, float]:
    """Every project distance of candidate ``x`` (searchable params) to the env's target, plus the yardstick."""
    from synthenv import distances

    _, an = env.score(x[None])
    out = {k: float(v[0]) for k, v in distances.compute_all(env.target_analysis, an).items()}
    out["yardstick"] = yardstick(env.target_analysis.audio[0], an.audio[0], env.sample_rate)
    return out


def random_patches(note: Path, synth: str, n: int, distance: str, backend: str, seed: int = 0) -> dict[str, float]:
    """The best of ``n`` random patches of ``synth`` on ``distance`` (pitch from the note), measured on all;
    ``yardstick_best``: the yardstick of the best of them by the yardstick itself (what a referee that
    scores only with the yardstick compares with)."""
    from synthenv.env import SoundMatchEnv

    env = SoundMatchEnv(synth=synth, backend=backend, targets=str(note), distance=distance)
    try:
        env.reset(seed=seed, options={"target_index": 0})
        xs = np.random.default_rng(seed).random((n, len(env.search_index)))
        d, an = env.score(xs)
        target = env.target_analysis.audio[0]
        best = min(yardstick(target, audio, env.sample_rate) for audio in an.audio)
        return {**score_all(env, xs[int(np.argmin(d))]), "yardstick_best": best}
    finally:
        env.close()


def matched(note: Path, synth: str, budget: int, distance: str, backend: str, out: Path,
            init: str = "cold", method: str = "cmaes", seed: int = 0) -> tuple[str, dict]:  # fmt: skip
    """``synthenv match`` (CMA-ES or ``method``, from a cold start or the inverse model's starts) of the note:
    (the synth used, its best re-measured on all distances)."""
    from synthenv.agents.match import match

    best = match(note, synth=synth, method=method, budget=budget, backend=backend, out_dir=out,
                 distance=distance, log=lambda *a: None, init=init, seed=seed)  # fmt: skip
    env, x = at_match(note, best, distance, backend)
    try:
        return best["synth"], score_all(env, x)
    finally:
        env.close()


def at_match(note: Path, best: dict, distance: str, backend: str):
    """An env with ``note`` as its target and the pitch fixed at the carrier ``best`` (a result of
    ``match``) settled on (fm's may sit at a harmonic of the pitch), and ``best``'s searchable params:
    ``(env, x)``. The caller closes the env."""
    from synthenv.env import SoundMatchEnv

    env = SoundMatchEnv(synth=best["synth"], backend=backend, targets=str(note), distance=distance)
    try:
        env.reset(options={"target_index": 0})
        spec = env.synth
        full = spec.normalize(spec.from_dicts(best["params"])[0])
        if "freq" in spec.names:
            env.fix_pitch(full[spec.index("freq")])
    except BaseException:
        env.close()
        raise
    return env, full[env.search_index]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, help="WAV notes to match (default: render the sets, see above)")
    ap.add_argument("--sets", default="fluidr3,timgm6mb", help="SoundFonts to render the notes with")
    ap.add_argument("--render", type=Path, metavar="DIR", help="only render the notes into DIR")
    ap.add_argument("--only", help="comma-separated instrument names to render")
    ap.add_argument("--synths", default="fm,subtractive,additive,auto")
    ap.add_argument("--distances", default="audible,logmel_l1", help="objectives to compare (the first is the default)")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--init", default="cold", choices=["cold", "inverse"],
                    help="where the search starts: cold (explores first; default) or inverse (the model's starts, "
                    "where synthenv match starts)")
    ap.add_argument("--method", default="cmaes", help="the search (default cmaes; cmaes_lm is match's default)")
    ap.add_argument("--seed", type=int, default=0, help="the search's seed (the random patches keep seed 0)")
    ap.add_argument("--json", type=Path, help="also write every result here")
    args = ap.parse_args()
    only = args.only.split(",") if args.only else None
    sets = args.sets.split(",")
    if args.render:
        for name in sets:
            for p in render_notes(args.render / name, only, soundfont=name):
                print(p)
        return

    from synthenv.samples import INSTRUMENTS_DIR

    synths, objectives = args.synths.split(","), args.distances.split(",")
    measures = ["audible", "logmel_l1", "mfcc_l1", "multiscale", "yardstick"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            files = {"folder": sorted(args.folder.glob("*.wav"))}
        elif shutil.which("fluidsynth") and all(SOUNDFONTS[s][0].exists() for s in sets):
            files = {s: render_notes(Path(tmp) / s, only, soundfont=s) for s in sets}
        else:
            print(f"fluidsynth or a SoundFont is missing: using the notes in {INSTRUMENTS_DIR}", file=sys.stderr)
            files = {"shipped": sorted(INSTRUMENTS_DIR.glob("*.wav"))}
        print(f"{args.method}@{args.budget} ({args.init} start) vs the best of {args.budget} random patches, "
              f"{args.backend} backend")  # fmt: skip
        for set_name, notes in files.items():
            for f in notes:
                for s in synths:
                    for obj in objectives:
                        used, cma = matched(f, s, args.budget, obj, args.backend, Path(tmp) / "out", args.init,
                                            args.method, args.seed)  # fmt: skip
                        rnd = random_patches(f, used, args.budget, obj, args.backend)
                        rows.append({"set": set_name, "note": f.stem, "synth": s, "used": used, "objective": obj,
                                     "cmaes": cma, "random": rnd, "ratio": cma[obj] / rnd[obj]})  # fmt: skip
                        print(f"{set_name:<9} {f.stem:<13} {s:<12} {used:<12} {obj:<10} cmaes {cma[obj]:6.2f} "
                              f"random {rnd[obj]:6.2f} ratio {cma[obj] / rnd[obj]:4.2f} "
                              f"yardstick {cma['yardstick']:5.2f}/{rnd['yardstick']:5.2f}", flush=True)  # fmt: skip
    print()
    print("| set | synth | objective | " + " | ".join(f"cmaes {m}" for m in measures)
          + " | random (objective) | ratio | ratio (yardstick) | ratio (yardstick, random's best by it) | wins |")
    print("| --- | --- | --- |" + " ---: |" * (len(measures) + 5))
    for set_name in files:
        for s in synths:
            for obj in objectives:
                sel = [r for r in rows if (r["set"], r["synth"], r["objective"]) == (set_name, s, obj)]
                if not sel:
                    continue
                means = [np.mean([r["cmaes"][m] for r in sel]) for m in measures]
                yard = np.mean([r["cmaes"]["yardstick"] / r["random"]["yardstick"] for r in sel])
                strict = np.mean([r["cmaes"]["yardstick"] / r["random"]["yardstick_best"] for r in sel])
                wins = sum(r["ratio"] < 1 for r in sel)
                print(f"| {set_name} | {s} | {obj} | " + " | ".join(f"{v:.2f}" for v in means)
                      + f" | {np.mean([r['random'][obj] for r in sel]):.2f} | {np.mean([r['ratio'] for r in sel]):.3f}"
                      f" | {yard:.3f} | {strict:.3f} | {wins} of {len(sel)} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
