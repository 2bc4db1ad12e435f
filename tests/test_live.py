"""The live backend against a real-time scsynth (JACK dummy server on headless machines)."""

import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import audio_servers, needs_scsynth, new_servers_after
from gymnasium.utils.env_checker import check_env

import synthenv
import synthenv.backends.live as live
from synthenv import BackendError, get_synth
from synthenv.backends import make_backend
from synthenv.features import scale_server_frames, server_summary

pytestmark = [pytest.mark.scsynth, needs_scsynth]
DUR = 0.25  # short notes keep real-time tests quick


@pytest.fixture
def no_new_servers():
    before = audio_servers()
    yield
    assert not new_servers_after(before), "a live env left scsynth or jackd running"


def test_check_env_episode_and_cleanup(no_new_servers):
    env = gym.make(synthenv.ENV_ID, synth="fm", backend="live", max_steps=4, render_mode="rgb_array")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env.unwrapped)
        obs, info = env.reset(seed=0)
        assert env.unwrapped.features == "server" and env.unwrapped.distance == "server_l1"
        done, steps = False, 0
        while not done:
            obs, reward, term, trunc, info = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs) and np.isfinite(reward)
            done, steps = term or trunc, steps + 1
        assert steps == 4 and env.render().dtype == np.uint8
    finally:
        env.close()


def test_live_frames_equal_nrt_frames():
    """Parity: same params, same analysis graph, same block alignment -> the same frames."""
    for name in ("fm", "subtractive", "additive"):
        spec = get_synth(name)
        params = spec.denormalize(np.random.default_rng(7).random((8, spec.n_params)))
        backend = make_backend("live", duration=DUR)
        try:  # twice: the second render reuses the server's memory pool (LocalBuf must be cleared)
            renders = [backend.render(spec, params).frames for _ in range(2)]
        finally:
            backend.close()
        frames_nrt = make_backend("nrt", duration=DUR, server_features=True).render(spec, params).frames
        for frames_live in renders:
            assert frames_live.shape == frames_nrt.shape == (8, int(22050 * DUR) // 512, 16)
            a, b = server_summary(scale_server_frames(frames_live)), server_summary(scale_server_frames(frames_nrt))
            assert np.abs(a - b).max() < 1e-3, name  # documented tolerance; measured: 0 (bit-identical)


def test_killed_server_gives_a_clear_error_fast_and_restart_recovers(no_new_servers):
    env = synthenv.env.SoundMatchEnv(synth="fm", backend="live", duration=DUR)
    try:
        env.reset(seed=0)
        os.kill(env.backend.pid, signal.SIGKILL)
        t = time.monotonic()
        with pytest.raises(BackendError, match=r"scsynth \(pid \d+\) exited"):
            env.step(np.zeros(5, np.float32))
        assert time.monotonic() - t < 5
    finally:
        env.close()

    env = synthenv.env.SoundMatchEnv(synth="fm", backend="live", duration=DUR, backend_options={"restart": True})
    env.reset(seed=0)
    old = env.backend.pid
    os.kill(old, signal.SIGKILL)
    obs, reward, *_ = env.step(np.zeros(5, np.float32))
    assert env.backend.pid != old and np.isfinite(reward)
    env.close()


def test_missing_replies_time_out(no_new_servers):
    backend = make_backend("live", duration=DUR, reply_timeout=1.0)
    spec = get_synth("fm")
    os.kill(backend.pid, signal.SIGSTOP)  # alive but silent
    try:
        t = time.monotonic()
        with pytest.raises(BackendError, match="no reply from scsynth"):
            backend.render(spec, spec.defaults[None, :])
        assert time.monotonic() - t < DUR + 1.0 + 2.0  # note + reply_timeout, with slack for a loaded machine
    finally:
        os.kill(backend.pid, signal.SIGCONT)
        backend.close()


def test_a_port_in_use_makes_the_server_take_another(monkeypatch, no_new_servers):
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    real = live.free_udp_port
    offered = iter([port])
    monkeypatch.setattr(live, "free_udp_port", lambda: next(offered, None) or real())
    server = live.LiveServer()
    try:
        assert server.address[1] != port and server.status()["synths"] == 0
    finally:
        server.close()
        taken.close()


def test_several_envs_in_one_process_do_not_clash(no_new_servers):
    envs = [synthenv.env.SoundMatchEnv(synth=s, backend="live", duration=DUR) for s in ("fm", "additive")]
    try:
        assert envs[0].backend.pid != envs[1].backend.pid
        for i, env in enumerate(envs):
            env.reset(seed=i)
        for env in envs:
            obs, reward, *_ = env.step(env.action_space.sample())
            assert np.isfinite(reward)
    finally:
        for env in envs:
            env.close()


def test_connecting_to_a_users_server_never_stops_it(no_new_servers):
    users = live.LiveServer()  # stands in for a server the user started
    try:
        host, port = users.address
        backend = make_backend("live", duration=DUR, server=f"{host}:{port}")
        assert backend.server.client_id != users.client_id and backend.pid is None
        spec = get_synth("fm")
        frames = backend.render(spec, spec.defaults[None, :]).frames
        assert frames.shape[0] == 1 and np.abs(frames).sum() > 0
        backend.close()
        assert users.alive and users.status()["synths"] == 0
    finally:
        users.close()


def test_recording_target_is_played_once_and_cached(pluck_wav, monkeypatch, no_new_servers):
    env = synthenv.env.SoundMatchEnv(synth="additive", backend="live", targets=str(pluck_wav), duration=DUR)
    calls = []
    real = env.backend.analyze_audio
    monkeypatch.setattr(env.backend, "analyze_audio", lambda a: calls.append(1) or real(a))
    try:
        obs, info = env.reset(seed=0)
        env.reset(seed=1)
        assert len(calls) == 1 and env.target.frames.shape == (1, int(22050 * DUR) // 512, 16)
        assert np.abs(env.target.frames).sum() > 0
        env.step(env.action_space.sample())
    finally:
        env.close()


@pytest.mark.slow
def test_subproc_vec_env_workers_each_get_a_server(no_new_servers):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env(
        "synthenv:synthenv/SoundMatch-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
        env_kwargs={"synth": "fm", "backend": "live", "duration": DUR, "max_steps": 3},
    )  # fmt: skip
    try:
        venv.reset()
        for _ in range(4):
            obs, rewards, dones, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
            assert obs.shape[0] == 2 and np.isfinite(rewards).all()
    finally:
        venv.close()


def _owner_with_a_live_server():
    """A Python process that boots a live backend, prints its scsynth pid and sleeps."""
    code = (
        "import sys, time\n"
        "from synthenv.backends import make_backend\n"
        "b = make_backend('live', duration=0.25)\n"
        "print(b.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = owner.stdout.readline()
    if not line:
        owner.wait()
        pytest.fail(f"the live backend did not boot:\n{owner.stderr.read()}")
    return owner, int(line)


def _kill(owner: subprocess.Popen) -> None:
    owner.kill()
    owner.wait()
    owner.stdout.close()
    owner.stderr.close()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_servers_die_with_the_process_that_started_them(no_new_servers):
    """kill -9 of the owning Python process takes its scsynth and jackd with it (PR_SET_PDEATHSIG)."""
    owner, scsynth_pid = _owner_with_a_live_server()
    try:
        servers = audio_servers(descendants_of=owner.pid)
        assert scsynth_pid in servers and len(servers) == 2  # scsynth and its private jackd
    finally:
        _kill(owner)
    deadline = time.monotonic() + 5
    while alive := {p for p in servers if _running(p)}:
        assert time.monotonic() < deadline, f"servers {alive} outlived their owner by 5 s"
        time.sleep(0.1)


def test_killed_servers_do_not_use_up_jack_slots(no_new_servers):
    """JACK's registry has 8 slots and a killed server keeps its slot. With a JACK server of ours running
    (so the when-no-jackd-runs cleanup cannot help), more kills than slots, each followed at once by the
    next boot (the killed jackd not yet reaped), still leave room for a new server."""
    keep = make_backend("live", duration=DUR)
    try:
        for _ in range(live.JACK_MAX_SERVERS + 1):
            owner, _pid = _owner_with_a_live_server()
            _kill(owner)
        make_backend("live", duration=DUR).close()
    finally:
        keep.close()
