import subprocess
import sys

import librosa
import numpy as np
import pytest
import soundfile
from conftest import needs_scsynth

from synthenv.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "synthenv.cli", *args], capture_output=True, text=True, timeout=120)


def test_render_subtractive_writes_1s_22050_wav_at_220_hz(tmp_path):
    out = tmp_path / "x.wav"
    r = run("render", "--synth", "subtractive", "--set", "freq=220", "-o", str(out))
    assert r.returncode == 0, r.stderr
    audio, sr = soundfile.read(out)
    assert sr == 22050 and audio.shape == (22050,)
    f0, voiced, _ = librosa.pyin(audio.astype(np.float32), fmin=60, fmax=1000, sr=sr)
    assert np.nanmedian(f0[voiced]) == pytest.approx(220.0, rel=0.02)


@pytest.mark.parametrize("args", [[], ["render"], ["synths"], ["doctor"], ["build-synthdefs"], ["play"], ["bench"]])
def test_help_everywhere(args, capsys):
    with pytest.raises(SystemExit) as e:
        main([*args, "--help"])
    assert e.value.code == 0
    assert "usage: synthenv" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["render", "--synth", "moog", "-o", "x.wav"], "unknown synth 'moog'"),
        (["render", "--synth", "fm", "--set", "freq", "-o", "x.wav"], "name=value"),
        (["render", "--synth", "fm", "--set", "freq=99999", "-o", "x.wav"], "outside its range"),
        (["render", "--synth", "fm", "--set", "cutoff=100", "-o", "x.wav"], "no parameter 'cutoff'"),
        (["render", "--synth", "fm", "--backend", "vst", "-o", "x.wav"], "unknown backend"),
    ],
)
def test_bad_arguments_give_one_clear_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_synths_and_doctor():
    r = run("synths")
    assert r.returncode == 0 and "subtractive" in r.stdout and "cutoff" in r.stdout
    r = run("doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "numpy" in r.stdout and "ok" in r.stdout


@needs_scsynth
def test_render_through_scsynth_nrt(tmp_path):
    out = tmp_path / "x.wav"
    r = run("render", "--backend", "nrt", "--synth", "fm", "--set", "freq=440", "-o", str(out))
    assert r.returncode == 0, r.stderr
    audio, sr = soundfile.read(out)
    assert sr == 22050 and audio.shape == (22050,)
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    assert np.argmax(spec) * sr / audio.size == pytest.approx(440.0, abs=2.0)


@needs_scsynth
def test_doctor_reports_scsynth():
    r = run("doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "scsynth 3." in r.stdout
    assert any(line.split()[:2] == ["nrt", "ok"] for line in r.stdout.splitlines())


@needs_scsynth
def test_play_a_target_and_a_patch_on_a_live_server(tmp_path):
    target = tmp_path / "t.wav"
    soundfile.write(target, 0.3 * np.sin(2 * np.pi * 220 * np.arange(11025) / 22050), 22050)
    params = tmp_path / "p.json"
    params.write_text('{"freq": 330, "index": 2}')
    r = run("play", "--synth", "fm", "--params", str(params), "--set", "ratio=2", "--target", str(target),
            "--duration", "0.3", "--jack", "dummy")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "target:" in r.stdout and "freq=330, ratio=2, index=2" in r.stdout
    r = run("play", "--synth", "fm", "--params", str(tmp_path / "none.json"))
    assert r.returncode == 2 and "params file not found" in r.stderr


def test_bench_writes_a_json_table(tmp_path):
    import json

    out = tmp_path / "bench.json"
    r = run("bench", "--backends", "numpy", "--sizes", "4", "--repeats", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    modes = {(row["backend"], row["mode"], row["num_envs"]) for row in data["rows"]}
    assert modes == {("numpy", "single", 1), ("numpy", "vector", 4), ("numpy", "final", 4), ("numpy", "raw", 4)}
    assert all(row["env_steps_per_s"] > 0 for row in data["rows"])
    assert {"numpy vector4 / single", "numpy final4 / vector4"} <= set(data["ratios"])
