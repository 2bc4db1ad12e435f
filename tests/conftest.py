"""Shared fixtures. Every test session checks that it leaves no audio server behind."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile

SR = 22050


def _audio_servers() -> set[str]:
    out = subprocess.run(["pgrep", "-x", "scsynth|jackd|jackdbus"], capture_output=True, text=True)
    return set(out.stdout.split())


@pytest.fixture(scope="session", autouse=True)
def no_servers_left_behind():
    before = _audio_servers()
    yield
    left = _audio_servers() - before
    assert not left, f"tests left audio-server processes running: pids {sorted(left)}"


def pluck(f0: float, sr: int = SR, seconds: float = 1.2, seed: int = 0) -> np.ndarray:
    """A Karplus-Strong plucked string: an instrument-like sound that no synthenv synth makes."""
    rng = np.random.default_rng(seed)
    period = int(round(sr / f0))
    buf = rng.uniform(-1, 1, period)
    out = np.empty(int(sr * seconds), dtype=np.float64)
    for i in range(out.size):
        j = i % period
        out[i] = buf[j]
        buf[j] = 0.996 * 0.5 * (buf[j] + buf[(j + 1) % period])
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture
def pluck_wav(tmp_path):
    """A stereo 44.1 kHz WAV of a G3 (196 Hz) pluck with 0.2 s of leading silence."""
    sr = 44100
    tone = pluck(196.0, sr)
    audio = np.concatenate([np.zeros(int(0.2 * sr), np.float32), tone])
    stereo = np.stack([audio, 0.8 * audio], axis=1)
    path = tmp_path / "pluck.wav"
    soundfile.write(path, stereo, sr)
    return path


def _needs(program: str, package: str):
    """Skip where ``program`` is truly absent outside CI; in CI (CI=true) never skip: fail instead."""
    import os
    import shutil

    absent = shutil.which(program) is None and not os.environ.get(f"SYNTHENV_{program.upper()}")
    return pytest.mark.skipif(
        absent and not os.environ.get("CI"),
        reason=f"{program} is not installed here (Debian package {package}; ./setup.sh installs it, CI always has it)",
    )


needs_scsynth = _needs("scsynth", "supercollider-server")
needs_sclang = _needs("sclang", "supercollider-language")
