"""`synthenv serve` (the OSC agent server) against real clients: python-osc sockets and a headless sclang
running the SynthEnv Quark; patch.scd executed by sclang and rendered by scsynth in NRT."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import needs_sclang, needs_scsynth
from pythonosc.osc_message import OscMessage

import synthenv
from synthenv import distances
from synthenv.features import analyze
from synthenv.supercollider import osc_message, sclang_env
from synthenv.synths import BUILTIN_SYNTHS

ROOT = Path(__file__).parent.parent
QUARK = ROOT / "sc" / "SynthEnv"
SR = 22050


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def note(tmp_path) -> Path:
    """A subtractive note (G3) as a WAV file."""
    path = tmp_path / "note.wav"
    soundfile.write(path, synthenv.render("subtractive", {"freq": 196.0, "cutoff": 900.0}), SR)
    return path


def start_server(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """``synthenv serve`` on a free port, owned by the test (the caller stops it): (process, port)."""
    port = _free_port()
    log = open(tmp_path / f"serve-{port}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "synthenv.cli", "serve", "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while "listening" not in (tmp_path / f"serve-{port}.log").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / f"serve-{port}.log").read_text()
        time.sleep(0.05)
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(tmp_path):
    proc, port = start_server(tmp_path, "--backend", "numpy")
    yield port
    stop_server(proc)


class Client:
    """A python-osc client socket: sends requests, collects replies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, *args) -> None:
        self.sock.sendto(osc_message(address, *args), ("127.0.0.1", self.port))

    def until(self, address: str, rid=None, timeout: float = 120.0) -> tuple[OscMessage, list[OscMessage]]:
        """Replies until one with ``address`` (and id ``rid``): (that one, all before it)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data, sender = self.sock.recvfrom(65536)
            assert sender == ("127.0.0.1", self.port)  # replies come from the port we asked
            msg = OscMessage(data)
            if msg.address == address and (rid is None or msg.params[0] == rid):
                return msg, seen
            seen.append(msg)


def test_match_reports_progress_then_params(server, note):
    c = Client(server)
    c.send("/synthenv/match", 7, str(note), "subtractive", 30)
    params, before = c.until("/synthenv/params", 7)
    progress = [m.params for m in before if m.address == "/synthenv/progress"]
    assert progress and [p[0] for p in progress] == [7] * len(progress)
    renders = [p[1] for p in progress]
    assert renders == sorted(renders) and renders[-1] == 30
    best = [p[2] for p in progress]
    assert best == sorted(best, reverse=True)  # best distance so far never rises
    rid, synth, *flat = params.params
    assert (rid, synth) == (7, "subtractive")
    assert flat[0::2] == synthenv.get_synth("subtractive").names
    assert all(isinstance(v, float) and np.isfinite(v) for v in flat[1::2])
    assert abs(flat[1] - 196.0) < 3  # the pitch of the note


def test_the_inverse_model_answers_in_one_render_and_the_default_starts_from_it(server, note):
    c = Client(server)
    c.send("/synthenv/match", 4, str(note), "subtractive", 1, "inverse")
    _, before = c.until("/synthenv/params", 4)
    progress = [m.params for m in before if m.address == "/synthenv/progress"]
    assert [p[1] for p in progress] == [1]
    guess = progress[0][2]
    # the default (no method) renders the model's starts first, the network's best guess among them
    c.send("/synthenv/match", 5, str(note), "subtractive", 20)
    _, before = c.until("/synthenv/params", 5)
    first = next(m.params for m in before if m.address == "/synthenv/progress")
    assert first[1] > 1 and first[2] <= guess + 1e-6


def test_several_requests_in_flight_and_cancel(server, note):
    a, b = Client(server), Client(server)
    a.send("/synthenv/match", 1, str(note), "fm", 100000)  # far more than it will get to do
    a.until("/synthenv/progress", 1)
    b.send("/synthenv/match", 1, str(note), "fm", 20)  # the same id from another client is another request
    msg, _ = b.until("/synthenv/params", 1)
    assert msg.params[1] == "fm"
    a.send("/synthenv/match", 1, str(note), "fm", 20)
    a.until("/synthenv/error", 1)  # id 1 of this client is still running
    a.send("/synthenv/cancel", 1)
    a.until("/synthenv/cancelled", 1, timeout=30)
    a.send("/synthenv/cancel", 1)
    err, _ = a.until("/synthenv/error", 1)
    assert "no match with id 1 is running" in err.params[1]


@pytest.mark.parametrize(
    "message, match",
    [
        (("/synthenv/match", 3, "x.wav"), "takes: int id, string path"),
        (("/synthenv/match", 3, 5, "fm", 10), "path is 5"),
        (("/synthenv/match", 3, "{note}", "moog", 10), "unknown synth 'moog'"),
        (("/synthenv/match", 3, "{note}", "fm", 0), "budget must be between"),
        (("/synthenv/match", 3, "{note}", "fm", 10, "annealing"), "unknown method 'annealing'"),
        (("/synthenv/match", 3, "{note}", "fm", 10, "ppo"), "needs a policy"),
        (("/synthenv/match", 3, "/no/such/file.wav", "fm", 10), "target file not found"),
        (("/synthenv/cancel", "three"), "takes one int id"),
        (("/neural/params", 3), "unknown message /neural/params"),
    ],
)
def test_malformed_and_unknown_messages_get_an_error_and_the_server_keeps_serving(server, note, message, match):
    c = Client(server)
    address, *args = message
    c.send(address, *[a.format(note=note) if isinstance(a, str) else a for a in args])
    err, _ = c.until("/synthenv/error")
    assert err.params[0] == (3 if isinstance(args[0], int) else -1) and match in err.params[1], err.params
    c.sock.sendto(b"not OSC at all", ("127.0.0.1", server))
    err, _ = c.until("/synthenv/error")
    assert err.params[0] == -1 and "not an OSC message" in err.params[1]
    c.send("/synthenv/ping", 9)
    pong, _ = c.until("/synthenv/pong")
    assert pong.params == [9]


def test_synths_lists_every_synth_with_its_parameters(server):
    c = Client(server)
    c.send("/synthenv/synths")
    msg, _ = c.until("/synthenv/synths")
    flat, found = list(msg.params), {}
    while flat:
        name, n, flat = flat[0], flat[1], flat[2:]
        found[name] = [flat[4 * k] for k in range(n)]
        for k in range(n):
            lo, hi, default = flat[4 * k + 1 : 4 * k + 4]
            assert lo <= default <= hi
        flat = flat[4 * n :]
    assert found == {s: synthenv.get_synth(s).names for s in BUILTIN_SYNTHS}  # the server's own process


def test_a_port_in_use_is_a_clear_error(server):
    proc = subprocess.run([sys.executable, "-m", "synthenv.cli", "serve", "--port", str(server)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "cannot listen on 127.0.0.1" in proc.stderr and "--port" in proc.stderr


# -- sclang ---------------------------------------------------------------------------------------
def run_sclang(tmp_path: Path, code: str, timeout: float = 120.0) -> str:
    """Run ``code`` in a headless sclang with the Quark on its include path (as the README says); the
    code ends sclang with ``0.exit``. Returns what sclang printed."""
    conf = tmp_path / "sclang_conf.yaml"
    conf.write_text(f"includePaths:\n    - {QUARK}\nexcludePaths: []\npostInlineWarnings: false\n")
    script = tmp_path / "script.scd"
    script.write_text(code + f'\nAppClock.sched({timeout - 10}, {{ "SCRIPT TIMEOUT".postln; 1.exit }});\n')
    home = tmp_path / "sclang-home"
    home.mkdir(exist_ok=True)
    env = dict(sclang_env(), HOME=str(home))
    proc = subprocess.run(["sclang", "-l", str(conf), str(script)], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "SCRIPT TIMEOUT" not in out and "ERROR" not in out, out[-3000:]
    return out


@needs_scsynth
@needs_sclang
@pytest.mark.scsynth
def test_the_readme_snippet_in_sclang_against_a_real_server(tmp_path, note):
    proc, port = start_server(tmp_path)  # the defaults: scsynth NRT renders
    try:
        out = run_sclang(tmp_path, f"""
~se = SynthEnv.new(port: {port});
~se.match("{note}", \\subtractive, 50, {{ |p| "PARAMS:".post; p.postln; 0.exit }});
""")
    finally:
        stop_server(proc)
    line = next(x for x in out.splitlines() if x.startswith("PARAMS:"))
    items = [t.strip() for t in line.removeprefix("PARAMS:").strip(" []").split(",")]
    assert items[0::2] == synthenv.get_synth("subtractive").names
    assert all(np.isfinite(float(v)) for v in items[1::2])


@needs_sclang
def test_sclang_cancel_errors_and_synths(tmp_path, server, note):
    out = run_sclang(tmp_path, f"""
~se = SynthEnv.new(port: {server});
~se.synths({{ |d| ("SYNTHS:" ++ d[\\fm].collect(_.first)).postln }});
~se.match("/no/such/note.wav", \\fm, 10, {{ "WRONG".postln }}, errorAction: {{ |text| ("MISSING:" ++ text).postln }});
NetAddr("127.0.0.1", {server}).sendMsg('/synthenv/match', "not", "a", "match");
~id = ~se.match("{note}", \\fm, 100000, {{ "WRONG".postln }},
    progress: {{ |renders| if(renders >= 20 and: {{ ~cancelled.isNil }}) {{ ~cancelled = true; ~se.cancel(~id) }} }});
fork {{
    1.wait; while {{ ~cancelled.isNil }} {{ 0.1.wait }}; 2.wait;
    ~se.synths({{ "STILL SERVING".postln; ~se.free; 0.exit }})
}};
""")
    assert "SYNTHS:[ freq, ratio, index, attack, decay, curve ]" in out
    assert "MISSING:target file not found: /no/such/note.wav" in out
    assert "request -1 failed: /synthenv/match takes: int id" in out  # the malformed one, reported by the Quark
    assert "SynthEnv: match 2 cancelled" in out and "STILL SERVING" in out and "WRONG" not in out


@needs_sclang
def test_the_quark_adds_the_projects_synthdefs(tmp_path):
    out = run_sclang(tmp_path, '("DEFS:" ++ SynthEnv.addSynthDefs.sort).postln; 0.exit;')
    names = ", ".join(sorted([*(synthenv.get_synth(s).synthdef for s in BUILTIN_SYNTHS),
                              "synthenv_analysis", "synthenv_player"]))  # fmt: skip
    assert f"DEFS:[ {names} ]" in out


@needs_scsynth
@needs_sclang
@pytest.mark.scsynth
@pytest.mark.parametrize("synth", ["fm", "subtractive", "additive"])
def test_patch_scd_runs_in_sclang_and_renders_the_match_in_nrt(tmp_path, note, synth):
    """synthenv match writes patch.scd; sclang evaluates it as it stands (no server booted: its
    SynthDef and params are defined, it asks for a booted server) and renders them with scsynth NRT;
    the sound is the match's own (params.json through the numpy surrogate)."""
    out_dir = tmp_path / "match"
    cmd = [sys.executable, "-m", "synthenv.cli", "match", str(note), "--synth", synth, "--budget", "12",
           "--backend", "numpy", "-o", str(out_dir)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wav = tmp_path / "patch.wav"
    sclang_out = run_sclang(tmp_path, f"""
thisProcess.interpreter.executeFile("{out_dir / 'patch.scd'}");
~score = Score([
    [0.0, ['/d_recv', ~synthenv_synthdef.asBytes]],
    [0.0, ['/s_new', ~synthenv_synthdef.name, 1000, 0, 0] ++ ~synthenv_params],
    [1.0, ['/c_set', 0, 0]]
]);
~score.recordNRT("{tmp_path / 'score.osc'}", "{wav}", sampleRate: {SR}, headerFormat: "WAV", sampleFormat: "float",
    options: ServerOptions.new.numOutputBusChannels_(1).numInputBusChannels_(0).loadDefs_(false),
    duration: 1, action: {{ "NRT DONE".postln; 0.exit }});
""")  # fmt: skip
    assert "boot the server first" in sclang_out and "NRT DONE" in sclang_out
    params = json.loads((out_dir / "params.json").read_text())
    rendered, sr = soundfile.read(wav, dtype="float32")
    assert sr == SR and rendered.shape[0] >= SR
    expected = synthenv.render(synth, params)
    d = distances.compute("logmel_l1", analyze(expected, SR), analyze(rendered[:SR], SR))[0]
    assert d < 0.5, d  # dB: the patch plays the matched sound (random patches are 12-23 dB apart)


def test_serve_stops_on_sigterm_and_leaves_nothing(tmp_path, note):
    proc, port = start_server(tmp_path, "--backend", "numpy")
    c = Client(port)
    c.send("/synthenv/match", 1, str(note), "fm", 100000)
    c.until("/synthenv/progress", 1)
    stop_server(proc)  # a running match is cancelled, the workers end, exit code 0
    assert "stopped" in (tmp_path / f"serve-{port}.log").read_text()
