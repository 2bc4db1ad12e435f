"""The live backend: a real-time scsynth driven over OSC (python-osc), features back by SendReply.

A :class:`LiveServer` is either a scsynth we boot (on a free UDP port bound to 127.0.0.1, with a
private JACK dummy server when no JACK server is running, as on headless machines and CI) or a
server the user already runs (``server="127.0.0.1:57110"``), which we never stop. We register
with ``/notify 1``, get a client ID, and keep our nodes, buses and buffers in ranges derived from
it, inside a group of our own.

One render of B candidates is one OSC bundle: for each candidate a synth node writing to a
private bus and an analysis node (``synthenv_analysis`` with ``reply=1``) reading it, created in
the same control block, exactly as the NRT score does at t = 0. The analysis nodes send one
``/synthenv/frame`` message per FFT frame; after the first ``server_n_frames(N)`` frames of every
candidate arrived the group is emptied (``/g_freeAll``). So a render takes ``duration`` seconds of
real time whatever B is, and its frames equal the NRT backend's (see the parity test).

Faults: a server that dies (or stops answering) makes the waiting render raise a
:class:`BackendError` within ``reply_timeout`` seconds; with ``restart=True`` the backend boots a new
server and renders again. Servers we start are stopped by :meth:`LiveServer.close`, at interpreter
exit, and (Linux) when the process that started them dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from synthenv.backends import Rendered
from synthenv.errors import BackendError
from synthenv.features import N_SERVER_FEATURES, TARGET_RMS, loudness_normalize, server_n_frames
from synthenv.spec import SynthSpec
from synthenv.supercollider import (
    ANALYSIS_SYNTHDEF,
    PLAYER_SYNTHDEF,
    find_scsynth,
    osc_bundle,
    osc_message,
    synthdef_bytes,
)

BOOT_TIMEOUT = 15.0
READY_LINE = "SuperCollider 3 server ready"
FRAME_ADDRESS = "/synthenv/frame"
IMMEDIATELY = 1.0 / 2**32  # OSC timetag 1: "execute now"
JACK_MAX_SERVERS = 8  # JACK's shared-memory registry holds this many servers
MAX_BATCH = 64  # candidates per render: private buses and buffers are reserved for this many


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn asking Linux to send ``sig`` to the child when the thread that started it exits."""

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG

    return preexec


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Process:
    """A child process we own: output collected by a thread, stopped on close/exit/parent death."""

    def __init__(self, cmd: list[str], env: dict[str, str], name: str, death_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.output: deque[str] = deque(maxlen=200)
        try:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                env=env, preexec_fn=_die_with_parent(death_signal) if os.name == "posix" else None,
            )  # fmt: skip
        except OSError as exc:
            raise BackendError(f"could not start {name} ({cmd[0]}): {exc}") from None
        self.lines = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name=f"synthenv-{name}-output").start()
        self._finalizer = weakref.finalize(self, _stop_process, self.proc)

    def _read(self) -> None:
        try:
            for line in self.proc.stdout:
                with self.lines:
                    self.output.append(line.rstrip())
                    self.lines.notify_all()
        except (OSError, ValueError):  # the pipe went away with the process
            pass
        finally:
            self.proc.stdout.close()

    def wait_for_line(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lines:
            while not any(text in line for line in self.output):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    return False
                self.lines.wait(0.05)
        return True

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        return "\n".join(list(self.output)[-n:])

    def stop(self) -> None:
        self._finalizer()


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


@contextlib.contextmanager
def _jack_start_lock():
    """Serialise JACK server start-ups across processes (SubprocVecEnv workers boot at once)."""
    import fcntl

    with open(os.path.join(tempfile.gettempdir(), f"synthenv-jack-{os.getuid()}.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _clear_stale_jack_state() -> None:
    """A killed JACK server never leaves JACK's registry (8 slots) unless a server of the same name
    starts again, so other programs' killed servers can fill it ('Too many servers already active').
    When no jackd runs at all (checked under the start lock), every registration is stale: remove them.
    Likewise the 8 MB shared-memory files that killed scsynths leave, when no scsynth runs."""
    shm = Path("/dev/shm")
    for program, pattern in (("jackd|jackdbus", "jack[-_]*"), ("scsynth", "SuperColliderServer_*")):
        try:
            running = subprocess.run(["pgrep", "-x", program], capture_output=True, timeout=5).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if running:
            continue
        for p in shm.glob(pattern):
            with contextlib.suppress(OSError):
                p.unlink()


def _jackd_names_in_use() -> set[str]:
    """The ``-n`` names of every jackd process on this machine (read from /proc, so a stopped or
    still-booting server counts too)."""
    names = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if os.path.basename(args[0]) != "jackd":
            continue
        for flag, value in zip(args, args[1:], strict=False):
            if flag in ("-n", "--name"):
                names.add(value)
    return names


def _jack_running(name: str | None = None) -> bool:
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    if name:
        env["JACK_DEFAULT_SERVER"] = name
    try:
        return subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class LiveServer:
    """A real-time scsynth we talk to over OSC: booted by us, or already running.

    Args:
        sample_rate: the rate of the JACK dummy server we start (a running JACK sets its own).
        server: ``"host:port"`` of a running scsynth to use instead of booting one.
        jack: ``"auto"`` (use a running JACK server, else start a private dummy one), ``"dummy"``
            (always a private dummy server) or ``"system"`` (require a running JACK server).
    """

    def __init__(self, sample_rate: int = 22050, server: str | None = None, jack: str = "auto",
                 reply_timeout: float = 3.0) -> None:  # fmt: skip
        if jack not in ("auto", "dummy", "system"):
            raise BackendError(f"jack must be 'auto', 'dummy' or 'system', got {jack!r}")
        self.sample_rate = sample_rate
        self.reply_timeout = reply_timeout
        self.jack_mode = jack
        self.owned = server is None
        self._jackd: _Process | None = None
        self._scsynth: _Process | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._cond = threading.Condition()
        self._replies: deque[tuple[str, list]] = deque(maxlen=1000)
        self._frames: dict[int, list[list[float]]] = {}  # frames of the notes being collected
        self._failures: deque[str] = deque(maxlen=50)
        self.frames_received = 0  # every /synthenv/frame that arrived (the soak benchmark counts them)
        self._closed = False
        self._receiver = threading.Thread(target=self._receive, daemon=True, name="synthenv-osc-receiver")
        self._receiver.start()
        self._loaded: set[str] = set()
        try:
            if server is None:
                self._boot()
            else:
                host, _, port = server.rpartition(":")
                if not port.isdigit():
                    raise BackendError(f"server must be 'host:port', got {server!r}")
                self.address = (host or "127.0.0.1", int(port))
            self._register()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------------
    def _boot(self) -> None:
        env = dict(os.environ)
        if self.jack_mode == "dummy" or (self.jack_mode == "auto" and not _jack_running()):
            with _jack_start_lock():
                _clear_stale_jack_state()
                name = self._start_jackd(env)
            env["JACK_DEFAULT_SERVER"] = name
        elif self.jack_mode == "system" and not _jack_running():
            raise BackendError("jack='system' but no JACK server is running: start one (e.g. qjackctl) or use 'auto'")
        env["JACK_NO_START_SERVER"] = "1"
        scsynth = find_scsynth()
        for _attempt in range(5):  # a port taken between our probe and scsynth's bind -> another port
            port = free_udp_port()
            cmd = [scsynth, "-u", str(port), "-B", "127.0.0.1", "-i", "0", "-o", "2", "-R", "0", "-l", "16",
                   "-a", "4096", "-m", "65536", "-D", "0"]  # fmt: skip
            proc = _Process(cmd, env, "scsynth")
            if proc.wait_for_line(READY_LINE, BOOT_TIMEOUT):
                self._scsynth = proc
                self.address = ("127.0.0.1", port)
                return
            proc.stop()
            log = proc.tail()
            if not any(t in log.lower() for t in ("address in use", "address already in use", "bind")):
                raise BackendError(f"scsynth did not start within {BOOT_TIMEOUT:.0f} s:\n{log}")
        raise BackendError(f"scsynth could not bind a free UDP port on 127.0.0.1:\n{log}")

    def _start_jackd(self, env: dict[str, str]) -> str:
        """Start a private JACK dummy server; return its name.

        Names come from a fixed pool: JACK's registry has JACK_MAX_SERVERS slots and frees a killed
        server's slot only when a server of the same name starts, so reusing names keeps our killed
        servers from filling it (unique names end in 'Too many servers already active'). A name whose
        last server died but is not yet reaped (JACK counts a zombie as alive) gives 'server already
        active': the next name is tried."""
        in_use = _jackd_names_in_use()
        log = ""
        for k in range(JACK_MAX_SERVERS):
            name = f"synthenv-{os.getuid()}-{k}"
            if name in in_use:
                continue
            # SIGKILL when our process dies: on SIGTERM jackd waits up to 6 s for its scsynth client,
            # dying at the same moment, to deactivate. The registry slot it leaves is reclaimed by the
            # next server of this name.
            jackd = _Process(
                ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(self.sample_rate), "-p", "256"],
                dict(env, JACK_NO_START_SERVER="1"), "jackd", death_signal=signal.SIGKILL,
            )  # fmt: skip
            deadline = time.monotonic() + BOOT_TIMEOUT
            while not _jack_running(name):
                if not jackd.alive or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            else:
                self._jackd = jackd
                return name
            jackd.stop()
            log = jackd.tail()
            if "' server already active" not in log:
                raise BackendError(f"the JACK dummy server did not start:\n{log}")
        raise BackendError(
            f"no JACK server slot is free (JACK allows {JACK_MAX_SERVERS} servers; running: {sorted(in_use)}): "
            f"close some live envs, or start one JACK server and use jack='system'\n{log}"
        )

    def _register(self) -> None:
        reply = self.request(osc_message("/notify", 1), lambda a, p: a == "/done" and p[:1] == ["/notify"])
        self.client_id = int(reply[1]) if len(reply) > 1 else 0
        self._node_ids = itertools.count((self.client_id << 20) + 1000)
        self.group = self.new_node_id()
        self.send(osc_message("/g_new", self.group, 0, 0))
        self.sync()

    @property
    def alive(self) -> bool:
        return not self._closed and (self._scsynth is None or self._scsynth.alive)

    @property
    def pid(self) -> int | None:
        return self._scsynth.proc.pid if self._scsynth else None

    def close(self) -> None:
        """Free our group; stop the servers we started (never one the user runs)."""
        if self._closed:
            return
        if self.alive and hasattr(self, "group"):
            with contextlib.suppress(Exception):
                self.send(osc_message("/g_freeAll", self.group), osc_message("/n_free", self.group))
                if self._scsynth is not None:
                    self.send(osc_message("/quit"))
                    self._scsynth.proc.wait(timeout=2)
        self._closed = True
        for proc in (self._scsynth, self._jackd):
            if proc is not None:
                proc.stop()
        if self._scsynth is not None:  # a killed scsynth leaves its 8 MB shared-memory file behind
            with contextlib.suppress(OSError):
                os.remove(f"/dev/shm/SuperColliderServer_{self.address[1]}")
        self._sock.close()

    # -- OSC ------------------------------------------------------------------------------------
    def send(self, *messages: bytes, bundle: bool = False) -> None:
        if self._closed:
            raise BackendError("the live server was closed")
        try:
            if bundle:
                self._sock.sendto(osc_bundle(IMMEDIATELY, list(messages)), self.address)
            else:
                for m in messages:
                    self._sock.sendto(m, self.address)
        except OSError as exc:
            raise BackendError(f"could not send OSC to scsynth at {self.address}: {exc}") from None

    def _receive(self) -> None:
        while not self._closed:
            try:
                data, _ = self._sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            try:
                msgs = _unpack(data)
            except Exception:  # a malformed packet must not kill the receiver
                continue
            with self._cond:
                for address, params in msgs:
                    if address == FRAME_ADDRESS and len(params) >= 2 + N_SERVER_FEATURES:
                        self.frames_received += 1
                        node = int(params[0])
                        if node in self._frames:  # late frames of finished notes are dropped
                            self._frames[node].append(params[2 : 2 + N_SERVER_FEATURES])
                    elif address == "/fail":
                        self._failures.append(" ".join(map(str, params)))
                    else:
                        self._replies.append((address, params))
                self._cond.notify_all()

    def _check(self) -> None:
        if self._scsynth is not None and not self._scsynth.alive:
            raise BackendError(
                f"scsynth (pid {self._scsynth.proc.pid}) exited with code {self._scsynth.proc.returncode}; "
                f"last output:\n{self._scsynth.tail(8)}"
            )

    def _wait(self, ready, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = ready()
                if result is not None:
                    return result
                if self._failures:
                    raise BackendError(f"scsynth reported a failure: {self._failures.popleft()}")
                self._check()
                if time.monotonic() > deadline:
                    raise BackendError(f"no reply from scsynth at {self.address[0]}:{self.address[1]} within "
                                       f"{timeout:.1f} s while waiting for {what}")  # fmt: skip
                self._cond.wait(0.05)

    def _exchange(self, messages: list[bytes], ready, what: str, timeout: float | None = None, bundle: bool = False):
        """Forget earlier replies, send ``messages``, and wait until ``ready()`` (run on the replies
        under the lock) returns something other than None; return that."""
        with self._cond:
            self._replies.clear()
        self.send(*messages, bundle=bundle)
        return self._wait(ready, timeout or self.reply_timeout, what)

    def request(self, message: bytes, match, timeout: float | None = None) -> list:
        """Send ``message`` and wait for the first reply with ``match(address, params)``."""

        def ready():
            for address, params in self._replies:
                if match(address, params):
                    return params
            return None

        return self._exchange([message], ready, f"the reply to {OscMessage(message).address}", timeout)

    def sync(self) -> None:
        sync_id = int(time.monotonic_ns() % 2**31)
        self.request(osc_message("/sync", sync_id), lambda a, p: a == "/synced" and p[:1] == [sync_id])

    def status(self) -> dict[str, float]:
        """``/status``: UGens, synths, groups, SynthDefs, CPU and sample rates."""
        p = self.request(osc_message("/status"), lambda a, p: a == "/status.reply")
        keys = ("ugens", "synths", "groups", "synthdefs", "avg_cpu", "peak_cpu", "nominal_sr", "actual_sr")
        return dict(zip(keys, p[1:], strict=False))

    def start_nodes(self, messages: list[bytes], ids: list[int]) -> None:
        """Send ``/s_new`` messages in one bundle and wait until scsynth reports each node started."""
        want = set(ids)

        def ready():
            started = {int(p[0]) for a, p in self._replies if a == "/n_go" and p}
            return True if want <= started else None

        self._exchange(messages, ready, f"/n_go of node(s) {sorted(want)}", bundle=True)

    def new_node_id(self) -> int:
        return next(self._node_ids)

    def load_synthdef(self, spec_or_name: SynthSpec | str) -> None:
        name = spec_or_name.synthdef if isinstance(spec_or_name, SynthSpec) else spec_or_name
        if name in self._loaded:
            return
        self.request(osc_message("/d_recv", synthdef_bytes(spec_or_name)),
                     lambda a, p: a == "/done" and p[:1] == ["/d_recv"])  # fmt: skip
        self._loaded.add(name)

    # -- notes ----------------------------------------------------------------------------------
    def play_and_analyze(self, notes: list[list], n_frames: int, timeout: float, buses: list[int],
                         buffers: list[int]) -> np.ndarray:  # fmt: skip
        """Start each note (``/s_new`` args without the node ID, writing to its bus) with an analysis
        node on that bus, all in one bundle; collect ``n_frames`` frames of each; free them.
        Returns raw frames float32 ``[B, n_frames, 16]``."""
        msgs, analysis_ids = [], []
        for args in notes:
            msgs.append(osc_message("/s_new", args[0], self.new_node_id(), 0, self.group, *args[1:]))
        for bus, buf in zip(buses, buffers, strict=True):
            node = self.new_node_id()
            analysis_ids.append(node)
            msgs.append(osc_message("/s_new", ANALYSIS_SYNTHDEF, node, 1, self.group,
                                    "in", bus, "buf", buf, "reply", 1, "id", node))  # fmt: skip
        with self._cond:
            for node in analysis_ids:
                self._frames[node] = []
        try:
            self.send(*msgs, bundle=True)
            self._wait(
                lambda: True if all(len(self._frames[n]) >= n_frames for n in analysis_ids) else None,
                timeout,
                f"{n_frames} analysis frames from {len(analysis_ids)} node(s)",
            )
            with self._cond:
                frames = np.array([self._frames[n][:n_frames] for n in analysis_ids], dtype=np.float32)
        finally:
            with self._cond:
                for node in analysis_ids:
                    self._frames.pop(node, None)
            if self.alive:
                self.send(osc_message("/g_freeAll", self.group))
        return frames


def _unpack(data: bytes) -> list[tuple[str, list]]:
    if data.startswith(b"#bundle"):
        out = []
        for item in OscBundle(data):
            out.extend(_unpack(item.dgram) if isinstance(item, OscBundle) else [(item.address, list(item.params))])
        return out
    m = OscMessage(data)
    return [(m.address, list(m.params))]


class LiveBackend:
    """Renders on a real-time scsynth; returns server-feature frames only (no audio comes back)."""

    name = "live"
    feature_sources = ("server",)

    def __init__(
        self,
        sample_rate: int = 22050,
        duration: float = 1.0,
        *,
        server_features: bool = True,
        server: str | None = None,
        jack: str = "auto",
        restart: bool = False,
        reply_timeout: float = 3.0,
    ) -> None:
        if not server_features:
            raise BackendError("the live backend returns server features only: use features='server'")
        self.sample_rate = sample_rate
        self.duration = duration
        self.restart = restart
        self.reply_timeout = reply_timeout
        self._server_args = {"sample_rate": sample_rate, "server": server, "jack": jack, "reply_timeout": reply_timeout}
        self.server = LiveServer(**self._server_args)
        self._setup_server()

    def _setup_server(self) -> None:
        s = self.server
        status = s.status()
        if abs(status.get("nominal_sr", self.sample_rate) - self.sample_rate) > 1:
            nominal = status.get("nominal_sr")
            s.close()
            raise BackendError(f"the scsynth runs at {nominal:g} Hz but the env needs {self.sample_rate} Hz: "
                               "start JACK at that rate, or let synthenv boot its own server")  # fmt: skip
        # private buses and buffers of this client: 2 x MAX_BATCH from a base that its client ID sets
        # (scsynth's default 1024 buses and buffers leave room for 7 clients)
        base = 64 + (s.client_id % 7) * 2 * MAX_BATCH
        self.buses = list(range(base, base + MAX_BATCH))
        self.buffers = list(range(base, base + MAX_BATCH))  # analysis frames
        self.player_buffers = list(range(base + MAX_BATCH, base + 2 * MAX_BATCH))  # audio-file targets
        self.n_frames = server_n_frames(self.n_samples)
        for b in self.buffers:
            s.send(osc_message("/b_alloc", b, self.n_frames + 2, N_SERVER_FEATURES))
        s.load_synthdef(ANALYSIS_SYNTHDEF)
        s.sync()

    @property
    def n_samples(self) -> int:
        return int(round(self.sample_rate * self.duration))

    @property
    def pid(self) -> int | None:
        """The process ID of the scsynth this backend started (None for a user's server)."""
        return self.server.pid

    def render(self, spec: SynthSpec, params: np.ndarray) -> Rendered:
        p = spec.validate(params)
        return self._with_restart(lambda: Rendered(audio=None, frames=self._render(spec, p)))

    def analyze_audio(self, audio: np.ndarray) -> np.ndarray:
        """Play audio ``[B, N]`` (at ``TARGET_RMS``) from server buffers through the analysis SynthDef:
        raw frames ``[B, T, 16]``. Used for audio-file targets (the env caches the result)."""
        a = loudness_normalize(audio, TARGET_RMS)
        return self._with_restart(lambda: self._play_audio(a))

    def close(self) -> None:
        self.server.close()

    def __repr__(self) -> str:
        where = "own" if self.server.owned else "external"
        return f"LiveBackend({where} scsynth at {self.server.address}, sample_rate={self.sample_rate})"

    # -- internals ------------------------------------------------------------------------------
    def _with_restart(self, fn):
        try:
            return fn()
        except BackendError:
            if not (self.restart and self.server.owned and not self.server.alive):
                raise
        self.server.close()  # dead: boot a new one and try once more
        self.server = LiveServer(**self._server_args)
        self._setup_server()
        return fn()

    def _timeout(self) -> float:
        return self.duration + self.reply_timeout

    def _render(self, spec: SynthSpec, p: np.ndarray) -> np.ndarray:
        self.server.load_synthdef(spec)
        out = []
        for start in range(0, p.shape[0], MAX_BATCH):
            rows = p[start : start + MAX_BATCH]
            buses = self.buses[: len(rows)]
            notes = []
            for row, bus in zip(rows, buses, strict=True):
                args: list = [spec.synthdef, "out", bus]
                for name, value in zip(spec.names, row, strict=True):
                    args += [name, float(value)]
                notes.append(args)
            out.append(self.server.play_and_analyze(notes, self.n_frames, self._timeout(), buses,
                                                    self.buffers[: len(rows)]))  # fmt: skip
        return np.concatenate(out)

    def _play_audio(self, audio: np.ndarray) -> np.ndarray:
        s = self.server
        s.load_synthdef(PLAYER_SYNTHDEF)
        out = []
        for start in range(0, audio.shape[0], MAX_BATCH):
            chunk = audio[start : start + MAX_BATCH]
            with tempfile.TemporaryDirectory(prefix="synthenv-live-") as tmp:
                notes = []
                for i, row in enumerate(chunk):
                    path = Path(tmp) / f"target{i}.wav"
                    soundfile.write(path, row, self.sample_rate, subtype="FLOAT")
                    buf = self.player_buffers[i]
                    s.request(osc_message("/b_allocRead", buf, str(path)),
                              lambda a, p: a == "/done" and p[:1] == ["/b_allocRead"])  # fmt: skip
                    notes.append([PLAYER_SYNTHDEF, "out", self.buses[i], "buf", buf])
                frames = s.play_and_analyze(notes, self.n_frames, self._timeout(), self.buses[: len(chunk)],
                                            self.buffers[: len(chunk)])  # fmt: skip
                for i in range(len(chunk)):
                    s.send(osc_message("/b_free", self.player_buffers[i]))
            out.append(frames)
        return np.concatenate(out)
