"""A real-time scsynth we talk to over OSC (python-osc): booted by us, or one the user already runs.

:class:`LiveServer` boots scsynth on a free UDP port bound to 127.0.0.1 (through a private JACK
dummy server, :mod:`synthenv.backends.jack`, when no JACK server is running), or connects to
``host:port`` of a running one, which it never stops. It registers with ``/notify 1``, gets a client
ID (below a limit if asked: see ``client_ids``), keeps its nodes in a range derived from it, inside a
group of its own, and gives the ID back (``/notify 0``) on close.

A receiver thread reads every packet that arrives on our socket. Only packets from the server's
address (host resolved to an IP, and port) are read; others are dropped and counted in
``foreign_packets``, so another local program cannot forge replies or analysis frames. Replies
wait for :meth:`LiveServer.request`; ``/fail`` makes the waiting call raise; ``/synthenv/frame``
messages (``SendReply`` of the analysis SynthDef) are collected per analysis node by
:meth:`LiveServer.play_and_analyze`.

Faults: a server that dies (or stops answering) makes the waiting call raise a
:class:`BackendError` within its timeout. Servers we start are stopped by :meth:`LiveServer.close`,
at interpreter exit, and (Linux) when the process that started them dies. A stopped or killed
scsynth leaves its 8 MB shared-memory file ``/dev/shm/SuperColliderServer_<port>``; we record the
port and the file's inode of every server we start in the private directory and, at the next boot,
remove the recorded files (only those) of ports no scsynth uses any more.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from synthenv.backends.jack import jack_running, jack_start_lock, start_private_jackd
from synthenv.errors import BackendError
from synthenv.features import N_SERVER_FEATURES
from synthenv.paths import private_dir
from synthenv.processes import BOOT_TIMEOUT, OwnedProcess, command_lines, flag_values
from synthenv.spec import SynthSpec
from synthenv.supercollider import ANALYSIS_SYNTHDEF, find_scsynth, osc_bundle, osc_message, synthdef_bytes

READY_LINE = "SuperCollider 3 server ready"
FRAME_ADDRESS = "/synthenv/frame"
IMMEDIATELY = 1.0 / 2**32  # OSC timetag 1: "execute now"
SHM = Path("/dev/shm")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the shared-memory files of the scsynths we start -----------------------------------------------
def _shm_record(port: int) -> Path:
    return private_dir() / f"scsynth-{port}"


def _scsynth_ports_in_use() -> set[int]:
    return {int(v) for args in command_lines("scsynth") for v in flag_values(args, "-u") if v.isdigit()}


def _record_shm(port: int, pid: int) -> None:
    """Note in the private directory that the scsynth ``pid`` we started made the shared-memory file of
    ``port`` (with its inode, so that a later file of another program's scsynth is never taken for it)."""
    path = SHM / f"SuperColliderServer_{port}"
    try:
        inode = path.lstat().st_ino
    except OSError:  # not on this system (no /dev/shm): nothing to clean up later
        return
    _shm_record(port).write_text(f"{pid} {inode}\n")


def clear_stale_shm() -> None:
    """Remove the shared-memory files of scsynths we started (recorded in the private directory, and
    still the very file recorded) on ports where no scsynth runs any more."""
    records = list(private_dir().glob("scsynth-*"))
    if not records:
        return
    in_use = _scsynth_ports_in_use()
    for record in records:
        port = record.name.removeprefix("scsynth-")
        if not port.isdigit() or int(port) in in_use:
            continue
        path = SHM / f"SuperColliderServer_{int(port)}"
        with contextlib.suppress(OSError, ValueError):
            inode = int(record.read_text().split()[1])
            st = path.lstat()
            if st.st_ino == inode and st.st_uid == os.getuid():
                path.unlink()
        with contextlib.suppress(OSError):
            record.unlink()


class LiveServer:
    """A real-time scsynth we talk to over OSC: booted by us, or already running.

    Args:
        sample_rate: the rate of the JACK dummy server we start (a running JACK sets its own).
        server: ``"host:port"`` of a running scsynth to use instead of booting one.
        jack: ``"auto"`` (use a running JACK server, else start a private dummy one), ``"dummy"``
            (always a private dummy server) or ``"system"`` (require a running JACK server).
        reply_timeout: seconds to wait for a reply before raising :class:`BackendError`.
        client_ids: take a client ID below this (scsynth gives IDs in turn, so later ones are handed
            back and free ones below asked for), else raise :class:`BackendError` ending with
            ``client_ids_reason``. None: any ID.
    """

    def __init__(self, sample_rate: int = 22050, server: str | None = None, jack: str = "auto",
                 reply_timeout: float = 3.0, client_ids: int | None = None,
                 client_ids_reason: str = "") -> None:  # fmt: skip
        if jack not in ("auto", "dummy", "system"):
            raise BackendError(f"jack must be 'auto', 'dummy' or 'system', got {jack!r}")
        self.sample_rate = sample_rate
        self.reply_timeout = reply_timeout
        self.jack_mode = jack
        self.client_ids = client_ids
        self.client_ids_reason = client_ids_reason
        self.owned = server is None
        self.address: tuple[str, int] | None = None  # the server's (IP, port): packets from elsewhere are dropped
        self._jackd: OwnedProcess | None = None
        self._scsynth: OwnedProcess | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._cond = threading.Condition()
        self._replies: deque[tuple[str, list]] = deque(maxlen=1000)
        self._frames: dict[int, list[list[float]]] = {}  # frames of the notes being collected
        self._failures: deque[str] = deque(maxlen=50)
        self.frames_received = 0  # every /synthenv/frame that arrived (the soak benchmark counts them)
        self.foreign_packets = 0  # packets from any address but the server's, dropped
        self._closed = False
        self._registered = False
        self._receiver = threading.Thread(target=self._receive, daemon=True, name="synthenv-osc-receiver")
        self._receiver.start()
        self._loaded: set[str] = set()
        try:
            if server is None:
                self._boot()
            else:
                self.address = _resolve(server)
            self._register()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------------
    def _boot(self) -> None:
        env = dict(os.environ)
        if self.jack_mode == "dummy" or (self.jack_mode == "auto" and not jack_running()):
            with jack_start_lock():
                self._jackd, name = start_private_jackd(self.sample_rate, env)
            env["JACK_DEFAULT_SERVER"] = name
        elif self.jack_mode == "system" and not jack_running():
            raise BackendError("jack='system' but no JACK server is running: start one (e.g. qjackctl) or use 'auto'")
        env["JACK_NO_START_SERVER"] = "1"
        scsynth = find_scsynth()
        clear_stale_shm()
        for _attempt in range(5):  # a port taken between our probe and scsynth's bind -> another port
            port = free_udp_port()
            cmd = [scsynth, "-u", str(port), "-B", "127.0.0.1", "-i", "0", "-o", "2", "-R", "0", "-l", "16",
                   "-a", "4096", "-m", "65536", "-D", "0"]  # fmt: skip
            proc = OwnedProcess(cmd, env, "scsynth")
            if proc.wait_for_line(READY_LINE, BOOT_TIMEOUT):
                self._scsynth = proc
                self.address = ("127.0.0.1", port)
                try:
                    _record_shm(port, proc.pid)
                except Exception:
                    proc.stop()
                    raise
                return
            proc.stop()
            # the port's shared-memory file is ours unless another scsynth holds the port
            if port not in _scsynth_ports_in_use():
                with contextlib.suppress(OSError):
                    (SHM / f"SuperColliderServer_{port}").unlink()
            log = proc.tail()
            if not any(t in log.lower() for t in ("address in use", "address already in use", "bind")):
                raise BackendError(f"scsynth did not start within {BOOT_TIMEOUT:.0f} s:\n{log}")
        raise BackendError(f"scsynth could not bind a free UDP port on 127.0.0.1:\n{log}")

    def _notify(self, *client_id: int) -> int:
        """``/notify 1 [client_id]``: register (asking for ``client_id``); the client ID scsynth gave."""
        reply = self.request(osc_message("/notify", 1, *client_id), lambda a, p: a == "/done" and p[:1] == ["/notify"])
        self._registered = True
        return int(reply[1]) if len(reply) > 1 else 0

    def _unnotify(self) -> None:
        self.request(osc_message("/notify", 0), lambda a, p: a == "/done" and p[:1] == ["/notify"])
        self._registered = False

    def _register(self) -> None:
        first = self.client_id = self._notify()
        if self.client_ids is not None and first >= self.client_ids:
            # scsynth hands IDs out in turn, not the lowest free one: ask for each one below the limit
            for want in range(self.client_ids):
                self._unnotify()
                self.client_id = self._notify(want)
                if self.client_id == want:
                    break
            else:
                self._unnotify()
                raise BackendError(
                    f"the scsynth at {self.address[0]}:{self.address[1]} gave synthenv client ID {first} and has no "
                    f"free client ID below {self.client_ids} (0 to {self.client_ids - 1} are all in use by other "
                    f"clients); {self.client_ids_reason}"
                )
        self._node_ids = itertools.count((self.client_id << 20) + 1000)
        self.group = self.new_node_id()
        self.send(osc_message("/g_new", self.group, 0, 0))
        self.sync()

    @property
    def alive(self) -> bool:
        return not self._closed and (self._scsynth is None or self._scsynth.alive)

    @property
    def pid(self) -> int | None:
        return self._scsynth.pid if self._scsynth else None

    @property
    def local_address(self) -> tuple[str, int]:
        """The (IP, port) our socket receives on."""
        return self._sock.getsockname()

    def close(self) -> None:
        """Free our group and client ID; stop the servers we started (never one the user runs)."""
        if self._closed:
            return
        if self.alive and self.address is not None:
            with contextlib.suppress(Exception):
                if hasattr(self, "group"):
                    self.send(osc_message("/g_freeAll", self.group), osc_message("/n_free", self.group))
                if self._registered:  # give the client ID back (a user's server has a few)
                    self.send(osc_message("/notify", 0))
                if self._scsynth is not None:
                    self.send(osc_message("/quit"))
                    self._scsynth.proc.wait(timeout=2)
        self._closed = True
        for proc in (self._scsynth, self._jackd):
            if proc is not None:
                proc.stop()
        if self._scsynth is not None:  # a stopped or killed scsynth leaves its 8 MB shared-memory file behind
            port = self.address[1]
            with contextlib.suppress(OSError):
                (SHM / f"SuperColliderServer_{port}").unlink()
            with contextlib.suppress(Exception):
                _shm_record(port).unlink(missing_ok=True)
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
                data, sender = self._sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            if sender != self.address:  # only the server may answer: forged replies and frames are dropped
                with self._cond:
                    self.foreign_packets += 1
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
                f"scsynth (pid {self._scsynth.pid}) exited with code {self._scsynth.proc.returncode}; "
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


def _resolve(server: str) -> tuple[str, int]:
    """``"host:port"`` -> (IPv4 address, port): the address replies must come from."""
    host, _, port = server.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BackendError(f"server must be 'host:port', got {server!r}")
    try:
        ip = socket.gethostbyname(host or "127.0.0.1")
    except OSError as exc:
        raise BackendError(f"cannot resolve the scsynth host {host!r} of server={server!r}: {exc}") from None
    return ip, int(port)


def _unpack(data: bytes) -> list[tuple[str, list]]:
    if data.startswith(b"#bundle"):
        out = []
        for item in OscBundle(data):
            out.extend(_unpack(item.dgram) if isinstance(item, OscBundle) else [(item.address, list(item.params))])
        return out
    m = OscMessage(data)
    return [(m.address, list(m.params))]
