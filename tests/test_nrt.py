"""The scsynth NRT backend against a real scsynth."""

import os
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_sclang, needs_scsynth
from gymnasium.utils.env_checker import check_env

import synthenv
from synthenv import BackendError, ParameterError, distances, get_synth, render
from synthenv.backends import make_backend
from synthenv.features import analyze
from synthenv.supercollider import PACKAGE_SYNTHDEFS, build_synthdefs, read_synthdefs

SR = 22050
SYNTHS = ["fm", "subtractive", "additive", "voice"]
pytestmark = pytest.mark.scsynth


@pytest.mark.parametrize("name", SYNTHS)
def test_compiled_synthdef_controls_match_the_spec(name):
    spec = get_synth(name)
    (info,) = read_synthdefs((PACKAGE_SYNTHDEFS / f"{spec.synthdef}.scsyndef").read_bytes())
    assert info.name == spec.synthdef
    assert list(info.controls) == ["out", *spec.names]
    for p in spec.params:
        assert info.controls[p.name] == pytest.approx(p.default, rel=1e-6), p.name


def test_analysis_synthdef_controls():
    (info,) = read_synthdefs((PACKAGE_SYNTHDEFS / "synthenv_analysis.scsyndef").read_bytes())
    assert list(info.controls) == ["in", "buf", "reply", "id"]


@needs_sclang
def test_recompiling_sc_sources_reproduces_the_committed_synthdefs(tmp_path):
    sources = sorted((Path(__file__).parent.parent / "sc").glob("*.scd"))
    expected = {f"{get_synth(s).synthdef}.scd" for s in SYNTHS} | {"synthenv_analysis.scd", "synthenv_player.scd"}
    assert {p.name for p in sources} == expected
    for path in build_synthdefs(sources, tmp_path):
        committed = PACKAGE_SYNTHDEFS / path.name
        assert path.read_bytes() == committed.read_bytes(), f"{path.name} is stale: run synthenv build-synthdefs"


@needs_scsynth
@pytest.mark.parametrize("name", SYNTHS)
def test_nrt_renders_dicts_like_numpy_does(name):
    one = render(name, {"freq": 330.0}, backend="nrt")
    assert one.shape == (SR,) and one.dtype == np.float32 and np.abs(one).max() > 0.01
    two = render(name, [{"freq": 330.0}, {"freq": 660.0}], backend="nrt")
    assert two.shape == (2, SR)
    np.testing.assert_allclose(two[0], one, atol=1e-6)
    surrogate = render(name, [{"freq": 330.0}, {"freq": 660.0}], backend="numpy")  # the same dicts, the same sounds
    d = distances.compute("logmel_l1", analyze(surrogate, SR), analyze(two, SR))
    assert d.max() < 0.5, d  # dB; random patches are 12-23 dB apart (benchmarks/parity.py)
    assert np.corrcoef(surrogate[1], two[1])[0, 1] > 0.99  # and the same waveform, not only the same spectrum


@needs_scsynth
@pytest.mark.parametrize("name", SYNTHS)
def test_parity_numpy_surrogate_vs_scsynth(name):
    """Mean log-mel L1 (numpy vs scsynth, same params) / mean log-mel L1 between random pairs < 0.05."""
    spec = get_synth(name)
    rng = np.random.default_rng(2026)
    rows = [spec.to_dict(spec.denormalize(x)) for x in rng.random((100, spec.n_params))]
    a_np = analyze(render(name, rows, backend="numpy"), SR)
    a_sc = analyze(render(name, rows, backend="nrt"), SR)
    parity = distances.compute("logmel_l1", a_sc, a_np).mean()
    pairs = distances.compute("logmel_l1", a_sc.take(slice(0, 50)), a_sc.take(slice(50, 100))).mean()
    assert parity / pairs < 0.05, (parity, pairs)


@needs_scsynth
def test_a_batch_of_64_is_one_scsynth_process(monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(cmd, *args, **kwargs):
        calls.append(cmd)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting_run)
    spec = get_synth("fm")
    backend = make_backend("nrt", processes=1)
    x = np.random.default_rng(0).random((64, spec.n_params))
    audio = backend.render(spec, spec.denormalize(x)).audio
    assert audio.shape == (64, SR) and len(calls) == 1
    assert calls[0][calls[0].index("-o") + 1] == "64"


@needs_scsynth
def test_big_batches_split_across_processes_give_the_same_audio(monkeypatch):
    spec = get_synth("subtractive")
    params = spec.denormalize(np.random.default_rng(1).random((10, spec.n_params)))
    one = make_backend("nrt", processes=1).render(spec, params).audio
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: calls.append(cmd) or real_run(cmd, *a, **k))
    split = make_backend("nrt", processes=2, max_batch=4).render(spec, params).audio
    assert len(calls) == 3  # 10 rows, at most 4 per process
    np.testing.assert_allclose(split, one, atol=1e-6)


@needs_scsynth
def test_server_features_come_back_per_candidate():
    spec = get_synth("fm")
    backend = make_backend("nrt", server_features=True)
    params = spec.from_dicts([{"freq": 220.0, "index": 0.0}, {"freq": 880.0, "index": 5.0}])
    r = backend.render(spec, params)
    assert r.audio.shape == (2, SR)
    assert r.frames.shape == (2, SR // 512, 16) and r.frames.dtype == np.float32
    assert np.isfinite(r.frames).all()
    centroid = r.frames[:, 5:20, 13].mean(axis=1)  # SpecCentroid, Hz
    assert centroid[0] == pytest.approx(220.0, rel=0.1)
    assert centroid[1] > 2 * centroid[0]
    frames = backend.analyze_audio(r.audio)  # the same audio played through the analysis again
    assert frames.shape == r.frames.shape
    np.testing.assert_allclose(frames[:, 5:20, 13], r.frames[:, 5:20, 13], rtol=0.05)


@needs_scsynth
@pytest.mark.parametrize("features", ["audio", "server"])
@pytest.mark.parametrize("name", SYNTHS)
def test_check_env_with_nrt(name, features):
    env = gym.make(synthenv.ENV_ID, synth=name, backend="nrt", features=features, render_mode="rgb_array",
                   metrics=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and np.isfinite(reward)
    if features == "server":
        assert "server_l1" in info["metrics"] and env.unwrapped.distance == "server_l1"
    env.close()


@needs_scsynth
def test_recording_target_with_server_features(pluck_wav):
    env = gym.make(synthenv.ENV_ID, synth="additive", backend="nrt", features="server", targets=str(pluck_wav))
    obs, info = env.reset(seed=0)
    assert info["target"]["kind"] == "file" and env.unwrapped.target.frames.shape == (1, SR // 512, 16)
    obs, reward, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)


# -- errors ---------------------------------------------------------------------------------------
def _fake_scsynth(tmp_path, body: str) -> str:
    path = tmp_path / "fake-scsynth"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_scsynth_not_found_names_the_package(monkeypatch):
    monkeypatch.delenv("SYNTHENV_SCSYNTH", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendError, match="supercollider-server.*SYNTHENV_SCSYNTH"):
        make_backend("nrt")


def test_failed_render_reports_exit_code_and_output(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHENV_SCSYNTH", _fake_scsynth(tmp_path, "echo 'exception: bad things'; exit 3"))
    with pytest.raises(BackendError, match=r"exit code 3\):\nexception: bad things"):
        render("fm", {}, backend="nrt")


def test_missing_output_is_an_error_and_temp_files_are_removed(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHENV_SCSYNTH", _fake_scsynth(tmp_path, "exit 0"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(BackendError, match="wrote no audio file"):
        render("fm", {}, backend="nrt")
    assert not list(tmp_path.glob("synthenv-nrt-*"))


@pytest.mark.parametrize(
    "write, match",
    [
        ("head -c 4000 /dev/zero", "audio file is short: 1000 frames"),  # one channel, cut off
        ("printf abc", "unreadable: 3 bytes are not whole frames"),  # not whole floats
    ],
)
def test_short_or_corrupt_output_is_a_clear_error(monkeypatch, tmp_path, write, match):
    # the output path is scsynth's 4th argument (-N score input output ...)
    monkeypatch.setenv("SYNTHENV_SCSYNTH", _fake_scsynth(tmp_path, f'{write} > "$4"; exit 0'))
    with pytest.raises(BackendError, match=match):
        render("fm", {}, backend="nrt")


def test_bad_params_are_rejected_before_any_process_starts(monkeypatch, tmp_path):
    marker = tmp_path / "started"
    monkeypatch.setenv("SYNTHENV_SCSYNTH", _fake_scsynth(tmp_path, f"touch {marker}; exit 1"))
    spec = get_synth("fm")
    backend = make_backend("nrt")
    bad = np.tile(spec.defaults, (2, 1))
    bad[1, 0] = np.nan
    with pytest.raises(ParameterError, match="finite"):
        backend.render(spec, bad)
    bad[1, 0] = 1e6
    with pytest.raises(ParameterError, match="outside its range"):
        backend.render(spec, bad)
    assert not marker.exists()


@needs_scsynth
def test_temp_files_are_removed_after_a_render(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    render("fm", [{}] * 3, backend="nrt")
    assert not list(tmp_path.glob("synthenv-nrt-*"))


# -- your own synth -------------------------------------------------------------------------------
PING_SCD = """
SynthDef(\\test_ping, { |out = 0, freq = 440, decay = 0.3|
    Out.ar(out, SinOsc.ar(freq) * EnvGen.ar(Env.perc(0.005, decay, 1, -4), doneAction: 2) * 0.3);
})
"""


def ping_surrogate(params, sr, n):
    from synthenv.synths import dsp

    freq, decay = params[:, 0], params[:, 1]
    env = dsp.envelope(np.tile([0.0, 1.0, 0.0], (len(freq), 1)), np.stack([np.full_like(decay, 0.005), decay], 1),
                       -4.0, n, sr)  # fmt: skip
    return (dsp.sine_const(freq, n, sr) * env * 0.3).astype(np.float32)


@needs_sclang
@needs_scsynth
def test_a_synth_defined_outside_the_package_renders_on_both_backends(tmp_path):
    scd = tmp_path / "test_ping.scd"
    scd.write_text(PING_SCD)
    spec = synthenv.SynthSpec(
        "test_ping",
        (
            synthenv.Param("freq", 100.0, 2000.0, 440.0, "exp", "Hz"),
            synthenv.Param("decay", 0.05, 1.0, 0.3, "exp", "s"),
        ),
        ping_surrogate,
        synthdef="test_ping",
        synthdef_path=str(scd),
    )
    synthenv.register_synth(spec, replace=True)
    rows = [{"freq": 300.0, "decay": 0.2}, {"freq": 1200.0, "decay": 0.8}]
    a_np, a_sc = render("test_ping", rows), render("test_ping", rows, backend="nrt")
    assert a_sc.shape == (2, SR)
    for a, b in zip(a_np, a_sc, strict=True):
        assert np.corrcoef(a, b)[0, 1] > 0.999
    env = gym.make(synthenv.ENV_ID, synth="test_ping", backend="nrt", max_steps=3)
    env.reset(seed=0)
    env.step(env.action_space.sample())


def test_custom_synth_with_a_missing_synthdef_file_is_a_clear_error(tmp_path):
    spec = synthenv.SynthSpec(
        "test_missing", (synthenv.Param("freq", 100.0, 2000.0, 440.0, "exp", "Hz"),), ping_surrogate,
        synthdef_path=str(tmp_path / "nope.scd"),
    )  # fmt: skip
    if not os.environ.get("SYNTHENV_SCSYNTH") and not __import__("shutil").which("scsynth"):
        pytest.skip("scsynth is not installed here")
    with pytest.raises(BackendError, match="SynthDef file not found"):
        make_backend("nrt").render(spec, spec.defaults[None, :])
