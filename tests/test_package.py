"""A wheel installed in a fresh venv carries what the package reads at run time: SynthDefs, sample notes and
the PPO hyperparameters; the dependencies it declares are enough."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import soundfile
import yaml

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_works_like_a_checkout(tmp_path):
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
    assert {f"synthenv/data/inverse/{s}.npz" for s in ("fm", "subtractive", "additive", "voice")} <= names

    venv = tmp_path / "venv"  # a fresh venv: the wheel and the dependencies it declares, nothing else
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(wheel), "pyyaml"], capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    check = subprocess.run([str(py), "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    code = (
        "import json, yaml, synthenv, soundfile\n"
        "from synthenv.samples import instrument_notes\n"
        "from synthenv.supercollider import read_synthdefs, synthdef_bytes\n"
        "from synthenv.agents.train import HYPERPARAMS_FILE, load_hyperparams\n"
        "print(synthenv.__file__)\n"
        "controls = read_synthdefs(synthdef_bytes(synthenv.get_synth('additive')))[0].controls\n"
        "assert 'a24' in str(controls), controls\n"
        "notes = instrument_notes()\n"
        "assert sorted(notes) == ['flute', 'nylon_guitar', 'piano', 'trumpet', 'violin'], notes\n"
        "assert all(soundfile.info(str(p)).samplerate == 22050 for p in notes.values())\n"
        "assert HYPERPARAMS_FILE.is_file(), HYPERPARAMS_FILE\n"
        "from synthenv.inverse import load_model\n"
        "g = load_model(None, 'voice').guesses(__import__('numpy').full((1, 87, 64), -60.0, 'float32'))\n"
        "assert g.shape == (1, 8, 22) and 'torch' not in __import__('sys').modules, g.shape\n"
        "print(json.dumps({'file': str(HYPERPARAMS_FILE), 'ppo': load_hyperparams(None, 'fm-numpy')['ppo']}))\n"
    )
    home = tmp_path / "home"  # a new user's empty home
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYTHON", "SYNTHENV_"))}
    env["HOME"] = str(home)
    run = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    where, config = run.stdout.strip().splitlines()
    assert where.startswith(str(venv)), where
    config = json.loads(config)
    assert config["file"].startswith(str(venv))  # the installed package's own copy, not the checkout's
    shipped = yaml.safe_load((ROOT / "agents" / "hyperparams" / "ppo.yml").read_text())["default"]["ppo"]
    for key, value in shipped.items():  # the installed wheel trains with the same settings as a checkout
        assert config["ppo"][key] == value, (key, config["ppo"][key], value)
    if shutil.which("scsynth"):  # scsynth renders from a fresh HOME (no SuperCollider folders in it)
        render = subprocess.run([str(venv / "bin" / "synthenv"), "render", "--backend", "nrt", "--synth", "fm",
                                 "-o", str(tmp_path / "x.wav")], capture_output=True, text=True, timeout=120,
                                cwd=tmp_path, env=env)  # fmt: skip
        assert render.returncode == 0, render.stderr
        assert soundfile.info(str(tmp_path / "x.wav")).frames == 22050
    # a first match, with no training and no torch: it starts from the shipped inverse model's guesses
    note = ROOT / "synthenv" / "data" / "instruments" / "flute.wav"
    match = subprocess.run([str(venv / "bin" / "synthenv"), "match", str(note), "--synth", "fm", "--budget", "8",
                            "--backend", "numpy", "-o", str(tmp_path / "m")], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert match.returncode == 0, match.stderr
    assert json.loads((tmp_path / "m" / "result.json").read_text())["init"] == "inverse"
