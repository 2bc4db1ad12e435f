"""``synthenv serve``: an OSC agent server that SuperCollider (sclang) asks for matches.

It listens on UDP ``127.0.0.1:PORT`` (default 57130) and answers every request to the address and
port that sent it (for sclang, its own ``NetAddr.langPort``), from the port it listens on:

==========================================================  ==================================================
request                                                     replies
==========================================================  ==================================================
``/synthenv/match id path synth budget [method]``           ``/synthenv/progress id renders best_distance``
                                                            while it works, then ``/synthenv/params id synth
                                                            name1 value1 name2 value2 ...``
``/synthenv/cancel id``                                     ``/synthenv/cancelled id`` (from the match)
``/synthenv/synths``                                        ``/synthenv/synths name n p1 lo1 hi1 default1
                                                            ... name n ...`` (every synth, its n parameters)
``/synthenv/ping [id]``                                     ``/synthenv/pong [id]``
anything malformed or unknown                               ``/synthenv/error id text`` (id -1 if none)
==========================================================  ==================================================

``path`` is an audio file on this machine. A sound in a server buffer is matched by writing it to a
file first (``Buffer.write``; the Quark's ``matchBuffer`` does that): a one-second note at 48 kHz is
192 kB of float samples, more than one UDP datagram carries, and scsynth writes the file in one
command, losslessly, where samples over OSC would need chunking, reassembly and loss handling.
``synth`` is a synth name or ``auto``; ``method`` is ``default`` (when omitted: CMA-ES then
Levenberg-Marquardt, as ``synthenv match`` does by default), ``cmaes``, ``cmaes_lm``, ``random``,
``hillclimb`` (every search starts from the inverse model's guesses where the synth has a model),
``inverse`` (the model's guess alone), or ``ppo`` when the server was started with ``--policy``.
``--inverse-model`` replaces the shipped inverse model of its synth. Several requests may be in flight
(each in its own worker); an ``id`` names a request of its sender.
"""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pythonosc.osc_packet import OscPacket, ParseError

from synthenv.errors import SynthenvError
from synthenv.supercollider import osc_message
from synthenv.synths import available_synths, get_synth

DEFAULT_PORT = 57130
METHODS = ("default", "cmaes", "cmaes_lm", "random", "hillclimb", "inverse", "ppo")


class Cancelled(SynthenvError):
    """A match stopped by ``/synthenv/cancel``."""


class RequestError(SynthenvError):
    """A malformed request; its text goes back in ``/synthenv/error``."""


class AgentServer:
    """The OSC agent server (see the module doc). ``serve_forever()`` runs it until ``stop()``.

    Args:
        port: UDP port on 127.0.0.1 (0: any free port; see :attr:`port`).
        policy: a run folder or exported policy file for ``method=ppo``.
        backend: where candidates are rendered: ``"nrt"`` (scsynth, default) or ``"numpy"``.
        workers: matches run at once; more wait in line.
        inverse_model: an inverse model ``.npz`` (``synthenv fit-inverse``) used instead of the shipped
            one for requests that name its synth.
    """

    def __init__(self, port: int = DEFAULT_PORT, policy: str | Path | None = None, backend: str = "nrt",
                 workers: int = 2, log: Callable[[str], None] = print,
                 inverse_model: str | Path | None = None) -> None:  # fmt: skip
        if backend not in ("nrt", "numpy"):
            raise SynthenvError(f"backend must be 'nrt' or 'numpy' (matching renders audio), got {backend!r}")
        self.backend = backend
        self.policy = str(policy) if policy else None
        if self.policy:  # fail now, not at the first request
            from synthenv.agents.policy import load_policy

            load_policy(self.policy)
        self.inverse_model, self._inverse_synth = None, None
        if inverse_model:  # fail now, not at the first request
            from synthenv.inverse import InverseModel

            self.inverse_model = str(inverse_model)
            self._inverse_synth = InverseModel.load(self.inverse_model).synth
        self.log = log
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(("127.0.0.1", int(port)))
        except OSError as exc:
            self._sock.close()
            raise SynthenvError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): another synthenv serve or "
                                "program uses it; choose another with --port") from None  # fmt: skip
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="synthenv-serve")
        self._jobs: dict[tuple, threading.Event] = {}  # (sender, id) -> its cancel flag
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # -- running --------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Receive and answer requests until :meth:`stop` (or Ctrl-C in the caller)."""
        try:
            while not self._stop.is_set():
                try:
                    data, sender = self._sock.recvfrom(65536)
                except TimeoutError:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                self.handle(data, sender)
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Cancel running matches, wait for their workers, and close the socket."""
        self._stop.set()
        with self._lock:
            for flag in self._jobs.values():
                flag.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._sock.close()

    # -- requests -------------------------------------------------------------------------------
    def handle(self, data: bytes, sender: tuple) -> None:
        """Answer one datagram from ``sender``; never raises."""
        try:
            messages = [m.message for m in OscPacket(data).messages]
        except ParseError as exc:
            self.reply(sender, "/synthenv/error", -1, f"not an OSC message or bundle: {exc}")
            return
        for msg in messages:
            args = list(msg.params)
            rid = args[0] if args and isinstance(args[0], int) else -1
            try:
                handler = {
                    "/synthenv/match": self._match,
                    "/synthenv/cancel": self._cancel,
                    "/synthenv/synths": self._synths,
                    "/synthenv/ping": self._ping,
                }.get(msg.address)
                if handler is None:
                    raise RequestError(f"unknown message {msg.address}; synthenv serve answers /synthenv/match, "
                                       "/synthenv/cancel, /synthenv/synths and /synthenv/ping")  # fmt: skip
                handler(sender, args)
            except SynthenvError as exc:
                self.reply(sender, "/synthenv/error", rid, str(exc))
            except Exception as exc:  # a bug must not stop the server: report it to the sender
                self.reply(sender, "/synthenv/error", rid, f"internal error: {type(exc).__name__}: {exc}")

    def reply(self, to: tuple, address: str, *args) -> None:
        try:
            self._sock.sendto(osc_message(address, *args), to)
        except OSError as exc:  # the sender went away: nothing to tell it
            self.log(f"synthenv serve: could not reply to {to[0]}:{to[1]}: {exc}")

    def _ping(self, sender: tuple, args: list) -> None:
        self.reply(sender, "/synthenv/pong", *args[:1])

    def _synths(self, sender: tuple, args: list) -> None:
        out: list = []
        for name in available_synths():
            spec = get_synth(name)
            out += [name, spec.n_params]
            for p in spec.params:
                out += [p.name, float(p.low), float(p.high), float(p.default)]
        self.reply(sender, "/synthenv/synths", *out)

    def _cancel(self, sender: tuple, args: list) -> None:
        if len(args) != 1 or not isinstance(args[0], int):
            raise RequestError(f"/synthenv/cancel takes one int id, got {args}")
        with self._lock:
            flag = self._jobs.get((sender, args[0]))
        if flag is None:
            raise RequestError(f"no match with id {args[0]} is running for {sender[0]}:{sender[1]}")
        flag.set()

    def _match(self, sender: tuple, args: list) -> None:
        rid, path, synth, budget, method = _match_args(args)
        if method == "ppo" and not self.policy:
            raise RequestError("method ppo needs a policy: start the server with synthenv serve --policy RUN")
        if synth != "auto":
            get_synth(synth)  # unknown synth: an error now
        if not Path(path).is_file():  # checked now, so that the error names the request at once
            raise RequestError(f"target file not found: {path}")
        key = (sender, rid)
        with self._lock:
            if key in self._jobs:
                raise RequestError(f"a match with id {rid} is already running for {sender[0]}:{sender[1]}")
            flag = self._jobs[key] = threading.Event()
        try:
            self._pool.submit(self._run_match, sender, rid, path, synth, budget, method, flag)
        except RuntimeError:  # the pool is shutting down
            with self._lock:
                self._jobs.pop(key, None)
            raise RequestError("the server is stopping") from None

    def _run_match(self, sender, rid, path, synth, budget, method, flag: threading.Event) -> None:
        from synthenv.agents.match import match

        def progress(renders: int, best: float) -> None:
            if flag.is_set():
                raise Cancelled(f"match {rid} cancelled")
            self.reply(sender, "/synthenv/progress", rid, int(renders), float(best))

        final: tuple = ("/synthenv/error", rid, "internal error: no reply")
        try:
            if flag.is_set():
                raise Cancelled(f"match {rid} cancelled")
            with tempfile.TemporaryDirectory(prefix="synthenv-serve-") as out:
                # the server's model replaces the shipped one of its synth for every method but ppo (a
                # policy starts as it was trained)
                inv = self.inverse_model if synth == self._inverse_synth and method != "ppo" else None
                best = match(path, synth=synth, method=None if method == "default" else method, budget=budget,
                             policy=self.policy, backend=self.backend, out_dir=out, log=lambda *a: None,
                             progress=progress, inverse_model=inv)  # fmt: skip
            flat = [a for name, value in best["params"].items() for a in (name, float(value))]
            final = ("/synthenv/params", rid, best["synth"], *flat)
            self.log(f"synthenv serve: match {rid} from {sender[0]}:{sender[1]}: {best['synth']}, "
                     f"{best['distance_name']} {best['distance']:.3f} after {best['renders']} renders")  # fmt: skip
        except Cancelled:
            final = ("/synthenv/cancelled", rid)
        except SynthenvError as exc:
            final = ("/synthenv/error", rid, str(exc))
        except Exception as exc:  # noqa: BLE001 - a worker must always answer
            final = ("/synthenv/error", rid, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:  # the id is free before the answer leaves: a client may reuse it at once
                self._jobs.pop((sender, rid), None)
            self.reply(sender, *final)


def _match_args(args: list) -> tuple[int, str, str, int, str]:
    usage = "/synthenv/match takes: int id, string path, string synth (or auto), int budget, [string method]"
    if len(args) not in (4, 5):
        raise RequestError(f"{usage}; got {len(args)} argument(s): {args}")
    rid, path, synth, budget = args[:4]
    method = args[4] if len(args) == 5 else "default"
    if isinstance(budget, float) and budget.is_integer():  # sclang sends 50.0 as a float
        budget = int(budget)
    kinds = [(rid, int, "id"), (path, str, "path"), (synth, str, "synth"), (budget, int, "budget"),
             (method, str, "method")]  # fmt: skip
    for value, kind, name in kinds:
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RequestError(f"{usage}; {name} is {value!r}")
    if not 1 <= budget <= 100_000:
        raise RequestError(f"budget must be between 1 and 100000 renders, got {budget}")
    if method not in METHODS:
        raise RequestError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return rid, str(Path(path).expanduser()), synth, budget, method
