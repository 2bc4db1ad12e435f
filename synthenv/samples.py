"""Notes of sampled real instruments that ship with synthenv, to try matching on.

Five 1.2 s notes (22,050 Hz mono) rendered from the FluidR3 GM SoundFont, whose samples are
recordings of real instruments; MIT licence (``synthenv/data/instruments/README.md``)::

    from synthenv.samples import instrument_notes
    match(instrument_notes()["trumpet"], synth="auto")
"""

from __future__ import annotations

from pathlib import Path

INSTRUMENTS_DIR = Path(__file__).parent / "data" / "instruments"


def instrument_notes() -> dict[str, Path]:
    """Name -> WAV path of each shipped note: flute, nylon_guitar, piano, trumpet, violin."""
    return {p.stem: p for p in sorted(INSTRUMENTS_DIR.glob("*.wav"))}
