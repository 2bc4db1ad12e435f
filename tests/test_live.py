"""The live backend against a real-time scsynth (JACK dummy server on headless machines)."""

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import audio_servers, needs_sclang, needs_scsynth, new_servers_after
from gymnasium.utils.env_checker import check_env
from pythonosc.osc_message import OscMessage

import synthenv
import synthenv.backends.jack as jack
import synthenv.backends.live as live
import synthenv.backends.scserver as scserver
import synthenv.supercollider as supercollider
from synthenv import BackendError, get_synth
from synthenv.backends import make_backend
from synthenv.errors import SynthenvError
from synthenv.features import scale_server_frames, server_summary
from synthenv.paths import private_dir
from synthenv.supercollider import check_server_frames, osc_message

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
    real = scserver.free_udp_port
    offered = iter([port])
    monkeypatch.setattr(scserver, "free_udp_port", lambda: next(offered, None) or real())
    server = scserver.LiveServer()
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


# -- the server boundary --------------------------------------------------------------------------
def _udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(3)
    return s


def _summary_gap(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference between the server summaries of two sets of raw frames."""
    return float(np.abs(server_summary(scale_server_frames(a)) - server_summary(scale_server_frames(b))).max())


def _wait_for(condition, what: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_packets_from_anyone_but_the_server_are_dropped(no_new_servers):
    """Another local program sends well-formed replies and frames to our port: none of them is read."""
    backend = make_backend("live", duration=DUR)
    server = backend.server
    spec = get_synth("fm")
    params = spec.denormalize(np.random.default_rng(3).random((4, spec.n_params)))
    forger = _udp_socket()
    try:
        clean = backend.render(spec, params).frames
        # a forged /fail would make the next request raise "scsynth reported a failure"
        forger.sendto(osc_message("/fail", "/sync", "forged"), server.local_address)
        _wait_for(lambda: server.foreign_packets >= 1, "the forged /fail to arrive")
        server.sync()
        # forged frames for exactly the analysis nodes being collected, sent throughout a render
        stop = threading.Event()

        def forge_frames() -> None:
            while not stop.is_set():
                for node in list(server._frames):
                    forger.sendto(osc_message(scserver.FRAME_ADDRESS, node, 0, *[1e6] * 16), server.local_address)
                time.sleep(0.001)

        thread = threading.Thread(target=forge_frames)
        thread.start()
        try:
            frames = backend.render(spec, params).frames
        finally:
            stop.set()
            thread.join()
        assert server.foreign_packets > 10
        assert _summary_gap(frames, clean) < 1e-3
    finally:
        forger.close()
        backend.close()


def test_a_users_server_given_by_name_answers_from_its_ip(no_new_servers):
    users = scserver.LiveServer()
    try:
        server = scserver.LiveServer(server=f"localhost:{users.address[1]}")
        try:
            assert server.address == ("127.0.0.1", users.address[1]) and server.status()["synths"] == 0
            assert server.foreign_packets == 0
        finally:
            server.close()
    finally:
        users.close()
    with pytest.raises(BackendError, match="must be 'host:port'"):
        scserver.LiveServer(server="localhost")


def test_private_dir_is_made_0700_and_owned_by_us(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = private_dir()
    assert path == tmp_path / f"synthenv-{os.getuid()}"
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()
    assert private_dir() == path  # an existing, safe directory is reused
    with jack.jack_start_lock():  # the lock lives inside it
        assert (path / "jack.lock").is_file() and not (path / "jack.lock").is_symlink()


def _plant_foreign_dir(path: Path, victim: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("only root can make a directory owned by another user")
    path.mkdir(mode=0o700)
    os.chown(path, 65534, -1)


@pytest.mark.parametrize(
    "plant, problem",
    [
        (lambda p, victim: p.symlink_to(victim, target_is_directory=True), "it is a symlink"),
        (lambda p, victim: p.write_text("x"), "it is not a directory"),
        (lambda p, victim: (p.mkdir(), p.chmod(0o755)), "its mode is 0755: group or others may use it"),
        (_plant_foreign_dir, "it is owned by uid 65534, not by you"),
    ],
)
def test_a_planted_private_dir_is_refused(monkeypatch, tmp_path, plant, problem):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    planted = tmp_path / f"synthenv-{os.getuid()}"
    plant(planted, victim)
    with pytest.raises(SynthenvError, match=re.escape(f"private directory {planted} is unsafe: {problem}")):
        private_dir()
    with pytest.raises(SynthenvError, match="unsafe"):  # the JACK lock and the SynthDef cache use it
        with jack.jack_start_lock():
            pass
    with pytest.raises(SynthenvError, match="unsafe"):
        supercollider._compiled_custom.__wrapped__(tmp_path / "nope.scd", 0)
    assert not list(victim.iterdir())


def test_a_symlink_planted_as_the_jack_lock_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    victim = tmp_path / "victim"
    (private_dir() / "jack.lock").symlink_to(victim)
    with pytest.raises(BackendError, match="could not open the JACK start-up lock"):
        with jack.jack_start_lock():
            pass
    assert not victim.exists()


def _shm_plants() -> list[Path]:
    tag = f"other-test-{os.getpid()}"
    return [
        Path(f"/dev/shm/jack-{tag}"),
        Path(f"/dev/shm/jack_sem.{os.getuid()}_{tag}_system"),
        Path(f"/dev/shm/jack_{tag}_0_0"),
        Path("/dev/shm/SuperColliderServer_1"),
    ]


def test_other_programs_shared_memory_files_survive_a_boot_and_close(no_new_servers):
    port = scserver.free_udp_port()  # a port a server of ours once used; another program's scsynth since
    plants = [p for p in [*_shm_plants(), Path(f"/dev/shm/SuperColliderServer_{port}")] if not p.exists()]
    try:
        for p in plants:
            p.write_bytes(b"not synthenv's")
        (private_dir() / f"scsynth-{port}").write_text(f"1 {plants[-1].stat().st_ino + 1}\n")
        backend = make_backend("live", duration=DUR, jack="dummy")
        backend.close()
        assert all(p.read_bytes() == b"not synthenv's" for p in plants)
        assert not (private_dir() / f"scsynth-{port}").exists()  # the stale record is gone
    finally:
        for p in plants:
            p.unlink(missing_ok=True)


def _flag(pid: int, flag: str) -> str:
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return args[args.index(flag) + 1]


def test_the_shared_memory_a_killed_server_left_is_removed_at_the_next_boot(no_new_servers):
    owner, scsynth_pid = _owner_with_a_live_server()
    try:
        port = _flag(scsynth_pid, "-u")
        (jackd_pid,) = audio_servers(descendants_of=owner.pid) - {scsynth_pid}
        jack_name = _flag(jackd_pid, "-n")
    finally:
        _kill(owner)
    _wait_for(lambda: not _running(scsynth_pid) and not _running(jackd_pid), "the servers to die", 5)
    shm_file = Path(f"/dev/shm/SuperColliderServer_{port}")
    assert shm_file.exists()  # scsynth does not remove it when stopped by a signal
    make_backend("live", duration=DUR).close()
    assert not shm_file.exists()
    if jack_name not in jack.jackd_names_in_use():  # its semaphores and sockets are gone too
        assert not list(Path("/dev/shm").glob(f"jack*_{jack_name}_*"))


def test_private_ranges_of_different_clients_never_overlap():
    taken: set[int] = set()
    for client_id in range(live.MAX_CLIENTS):
        buses, buffers, player = live.private_ranges(client_id)
        assert len(buses) == len(buffers) == len(player) == live.MAX_BATCH
        mine = set(buffers) | set(player)
        assert set(buses) <= mine and not mine & taken and min(mine) >= 64 and max(mine) < 1024
        taken |= mine
    for bad in (-1, live.MAX_CLIENTS):
        with pytest.raises(BackendError, match=f"client ID {bad}, but .* hold client IDs 0 to 6 only"):
            live.private_ranges(bad)


def _register(sock: socket.socket, address, flag: int = 1) -> list:
    sock.sendto(osc_message("/notify", flag), address)
    reply = OscMessage(sock.recvfrom(65536)[0])
    assert reply.address == "/done", reply.params
    return list(reply.params)


def test_clients_of_a_users_server_get_disjoint_ranges_or_a_clear_error(no_new_servers):
    users = scserver.LiveServer()  # client 0, standing in for the user's own sclang
    where = f"{users.address[0]}:{users.address[1]}"
    others = [_udp_socket() for _ in range(live.MAX_CLIENTS - 1)]
    spec = get_synth("fm")
    rng = np.random.default_rng(5)
    p1, p2 = (spec.denormalize(rng.random((3, spec.n_params))) for _ in range(2))
    try:
        ids = [_register(s, users.address)[1] for s in others]
        assert sorted(ids) == list(range(1, live.MAX_CLIENTS))  # IDs 0..6 all taken
        with pytest.raises(BackendError, match=f"scsynth at {where} gave synthenv client ID 7 and has no free "
                                               r"client ID below 7 .* close other clients"):  # fmt: skip
            make_backend("live", duration=DUR, server=where)
        _register(others[2], users.address, 0)  # client 3 leaves; scsynth would give 8 next
        _register(others[4], users.address, 0)  # client 5 leaves
        b1 = make_backend("live", duration=DUR, server=where)
        b2 = make_backend("live", duration=DUR, server=where)
        try:
            assert {b1.server.client_id, b2.server.client_id} == {3, 5}
            assert not (set(b1.buses) | set(b1.buffers) | set(b1.player_buffers)) & (
                set(b2.buses) | set(b2.buffers) | set(b2.player_buffers)
            )
            alone = [b1.render(spec, p1).frames, b2.render(spec, p2).frames]
            with ThreadPoolExecutor(2) as pool:  # both at once on one server: no crosstalk
                together = list(pool.map(lambda bp: bp[0].render(spec, bp[1]).frames, [(b1, p1), (b2, p2)]))
            for a, b in zip(alone, together, strict=True):
                assert _summary_gap(a, b) < 1e-3
        finally:
            b1.close()
            b2.close()
        again = make_backend("live", duration=DUR, server=where)  # closing gave the IDs back
        try:
            assert again.server.client_id in (3, 5)
        finally:
            again.close()
        assert users.alive and users.status()["synths"] == 0
    finally:
        for s in others:
            s.close()
        users.close()


def test_a_failure_reported_by_scsynth_raises(no_new_servers):
    server = scserver.LiveServer()
    try:
        node = server.new_node_id()
        with pytest.raises(BackendError, match="scsynth reported a failure: /s_new SynthDef not found"):
            server.start_nodes([osc_message("/s_new", "synthenv_no_such_synthdef", node, 0, server.group)], [node])
        with pytest.raises(BackendError, match=r"scsynth reported a failure: /n_query Node 99999 not found"):
            server.request(osc_message("/n_query", 99999), lambda a, p: a == "/n_info")
        server.sync()  # each failure is reported once; the server is fine
        assert server.status()["synths"] == 0
    finally:
        server.close()


# -- bad server data ------------------------------------------------------------------------------
def test_non_finite_frames_are_rejected_with_the_rows_named():
    frames = np.zeros((4, 10, 16), np.float32)
    assert check_server_frames(frames, "live") is frames
    frames[2, 7, 13] = np.nan
    frames[3, 0, 15] = np.inf
    expected = r"scsynth \(live backend\) produced non-finite analysis frames for candidate row\(s\) 2, 3 of 4 "
    with pytest.raises(BackendError, match=expected + r"\(first: row 2, frame 7, centroid = nan\)"):
        check_server_frames(frames, "live")
    assert np.isnan(scale_server_frames(frames)[2, 7, 13])  # scaling alone never hides them


HUGE_SCD = """
SynthDef(\\test_huge, { |out = 0, freq = 440, gain = 1|
    Out.ar(out, SinOsc.ar(freq) * gain);
})
"""


@needs_sclang
def test_a_synth_that_overflows_the_analysis_is_an_error_on_both_backends(tmp_path, no_new_servers):
    """A finite but huge output (1e30) overflows the analysis UGens: NRT and live both refuse its frames."""
    scd = tmp_path / "test_huge.scd"
    scd.write_text(HUGE_SCD)
    spec = synthenv.SynthSpec(
        "test_huge",
        (synthenv.Param("freq", 100.0, 2000.0, 440.0, "exp", "Hz"), synthenv.Param("gain", 0.1, 1e30, 1.0, "exp")),
        lambda p, sr, n: np.zeros((len(p), n), np.float32),
        synthdef="test_huge",
        synthdef_path=str(scd),
    )
    params = np.array([[440.0, 0.3], [440.0, 1e30], [880.0, 0.3]])
    nrt = make_backend("nrt", duration=DUR, server_features=True)
    assert np.isfinite(nrt.render(spec, params[[0, 2]]).frames).all()
    message = r"non-finite analysis frames for candidate row\(s\) 1 of 3"
    with pytest.raises(BackendError, match=r"scsynth \(nrt backend\) produced " + message):
        nrt.render(spec, params)
    backend = make_backend("live", duration=DUR)
    try:
        with pytest.raises(BackendError, match=r"scsynth \(live backend\) produced " + message):
            backend.render(spec, params)
        assert np.isfinite(backend.render(spec, params[[0, 2]]).frames).all()  # the server is fine
    finally:
        backend.close()
