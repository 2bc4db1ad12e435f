"""A non-editable install carries what the package reads at run time: SynthDefs and sample notes."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_a_wheel_install_finds_synthdefs_and_sample_notes(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("synthenv-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for synthdef in ("fm", "subtractive", "additive", "analysis", "player"):
        assert f"synthenv/synthdefs/synthenv_{synthdef}.scsyndef" in names
    assert "synthenv/synthdefs/build.scd" in names
    notes = ("flute", "nylon_guitar", "piano", "trumpet", "violin")
    assert {f"synthenv/data/instruments/{n}.wav" for n in notes} <= names

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    code = (
        "import synthenv, soundfile\n"
        "from synthenv.samples import instrument_notes\n"
        "from synthenv.supercollider import read_synthdefs, synthdef_bytes\n"
        "print(synthenv.__file__)\n"
        "controls = read_synthdefs(synthdef_bytes(synthenv.get_synth('additive')))[0].controls\n"
        "assert 'tilt' in str(controls), controls\n"
        "notes = instrument_notes()\n"
        "assert sorted(notes) == ['flute', 'nylon_guitar', 'piano', 'trumpet', 'violin'], notes\n"
        "assert all(soundfile.info(str(p)).samplerate == 22050 for p in notes.values())\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(site)), run.stdout
