"""Shared fixtures. Every test session checks that it leaves no audio server behind."""

from __future__ import annotations

import os
import subprocess
import time

import numpy as np
import pytest
import soundfile

SR = 22050


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def audio_servers(descendants_of: int | None = None) -> set[int]:
    """PIDs of running scsynth/jackd processes; only those this process started (directly or through
    its children, e.g. SubprocVecEnv workers) unless ``descendants_of`` is 0."""
    out = subprocess.run(["pgrep", "-x", "scsynth|jackd|jackdbus"], capture_output=True, text=True)
    pids = {int(p) for p in out.stdout.split()}
    root = os.getpid() if descendants_of is None else descendants_of
    if not root:
        return pids
    mine = set()
    for pid in pids:
        p = pid
        while p > 1:
            p = _parent(p)
            if p == root:
                mine.add(pid)
                break
    return mine


def new_servers_after(before: set[int], grace: float = 5.0) -> set[int]:
    """Audio servers started since ``before`` that are still running after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while audio_servers() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    return audio_servers() - before


@pytest.fixture(scope="session", autouse=True)
def no_servers_left_behind():
    before = audio_servers()
    yield
    left = new_servers_after(before)
    assert not left, f"tests left audio-server processes running: pids {sorted(left)}"


@pytest.fixture(scope="session", autouse=True)
def sb3_logs_in_tmp(tmp_path_factory):
    """A model trained without a log folder makes ``$TMPDIR/SB3-<date>`` and leaves it behind; send it to
    pytest's own temporary folder instead."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3")))
        yield


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


def in_ci() -> bool:
    """CI runs with CI=true: there, nothing that needs scsynth, sclang or jackd may be skipped."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _needs(program: str, package: str):
    """Skip where ``program`` is truly absent; under CI=true that skip is a failure (see below)."""
    import shutil

    absent = shutil.which(program) is None and not os.environ.get(f"SYNTHENV_{program.upper()}")
    return pytest.mark.skipif(
        absent,
        reason=f"{program} is not installed here (Debian package {package}; ./setup.sh installs it, CI always has it)",
    )


needs_scsynth = _needs("scsynth", "supercollider-server")
needs_sclang = _needs("sclang", "supercollider-language")
needs_jackd = _needs("jackd", "jackd2")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test is a failed one: CI cannot skip what must run (a missing program,
    a missing extra)."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: this test was skipped ({reason}); in CI every test must run"
