"""The live backend: renders on a real-time scsynth, features back by SendReply.

The server (ours or the user's) is a :class:`~synthenv.backends.scserver.LiveServer`; this module
only says what a render is. Setting up: check the server's sample rate, take this client's private
buses and buffers (:func:`private_ranges`, from its client ID, below ``MAX_CLIENTS``, so clients of one
shared server never overlap), allocate the analysis buffers, load the analysis SynthDef.

One render of B candidates is one OSC bundle: for each candidate a synth node writing to a
private bus and an analysis node (``synthenv_analysis`` with ``reply=1``) reading it, created in
the same control block, exactly as the NRT score does at t = 0. The analysis nodes send one
``/synthenv/frame`` message per FFT frame; after the first ``server_n_frames(N)`` frames of every
candidate arrived the group is emptied (``/g_freeAll``). So a render takes ``duration`` seconds of
real time whatever B is, and its frames equal the NRT backend's (see the parity test). Frames with
NaN or inf raise :class:`BackendError`, as on the NRT backend (``check_server_frames``).

Faults: a server that dies (or stops answering) makes the waiting render raise a
:class:`BackendError` within ``reply_timeout`` seconds; with ``restart=True`` the backend boots a new
server and renders again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile

from synthenv.backends import Rendered
from synthenv.backends.jack import JACK_MAX_SERVERS
from synthenv.backends.scserver import LiveServer, free_udp_port
from synthenv.errors import BackendError
from synthenv.features import N_SERVER_FEATURES, TARGET_RMS, loudness_normalize, server_n_frames
from synthenv.spec import SynthSpec
from synthenv.supercollider import ANALYSIS_SYNTHDEF, PLAYER_SYNTHDEF, check_server_frames, osc_message

__all__ = ["JACK_MAX_SERVERS", "MAX_BATCH", "LiveBackend", "LiveServer", "free_udp_port", "private_ranges"]

MAX_BATCH = 64  # candidates per render: private buses and buffers are reserved for this many
FIRST_PRIVATE = 64  # buses and buffers below this are left alone (hardware buses, the user's own)
SCSYNTH_DEFAULT_SLOTS = 1024  # scsynth's default number of audio buses (-a) and of buffers (-b)
PER_CLIENT = 2 * MAX_BATCH  # buffers per client: analysis frames, then audio-file targets
MAX_CLIENTS = (SCSYNTH_DEFAULT_SLOTS - FIRST_PRIVATE) // PER_CLIENT  # 7: client IDs 0..6


WHY_MAX_CLIENTS = (
    f"synthenv keeps {PER_CLIENT} buses and buffers per client from {FIRST_PRIVATE} up, and scsynth's default "
    f"{SCSYNTH_DEFAULT_SLOTS} audio buses and buffers hold client IDs 0 to {MAX_CLIENTS - 1} only: close other "
    "clients of that server (a client gives its ID back with /notify 0; a killed one holds it until the server "
    "restarts), or let synthenv boot its own server (no server=...)"
)


def private_ranges(client_id: int, where: str = "the scsynth") -> tuple[list[int], list[int], list[int]]:
    """The buses, analysis buffers and player buffers a client of a scsynth keeps to itself:
    ``PER_CLIENT`` numbers from ``FIRST_PRIVATE + client_id * PER_CLIENT``, disjoint for different IDs.

    Raises :class:`BackendError` for client IDs whose ranges would pass scsynth's default 1024 buses
    and buffers (IDs ``MAX_CLIENTS`` and up; :class:`LiveBackend` asks the server for a lower one)."""
    if not 0 <= client_id < MAX_CLIENTS:
        raise BackendError(f"{where} gave synthenv client ID {client_id}, but {WHY_MAX_CLIENTS}")
    base = FIRST_PRIVATE + client_id * PER_CLIENT
    buses = list(range(base, base + MAX_BATCH))
    return buses, list(range(base, base + MAX_BATCH)), list(range(base + MAX_BATCH, base + 2 * MAX_BATCH))


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
        self._server_args = {"sample_rate": sample_rate, "server": server, "jack": jack, "reply_timeout": reply_timeout,
                             "client_ids": MAX_CLIENTS, "client_ids_reason": WHY_MAX_CLIENTS}  # fmt: skip
        self.server = LiveServer(**self._server_args)
        self._setup_server()

    def _setup_server(self) -> None:
        s = self.server
        try:
            status = s.status()
            if abs(status.get("nominal_sr", self.sample_rate) - self.sample_rate) > 1:
                raise BackendError(f"the scsynth runs at {status.get('nominal_sr'):g} Hz but the env needs "
                                   f"{self.sample_rate} Hz: start JACK at that rate, or let synthenv boot its own "
                                   "server")  # fmt: skip
            where = f"the scsynth at {s.address[0]}:{s.address[1]}"
            self.buses, self.buffers, self.player_buffers = private_ranges(s.client_id, where)
            self.n_frames = server_n_frames(self.n_samples)
            for b in self.buffers:  # analysis frames
                s.send(osc_message("/b_alloc", b, self.n_frames + 2, N_SERVER_FEATURES))
            s.load_synthdef(ANALYSIS_SYNTHDEF)
            s.sync()
        except BaseException:
            s.close()
            raise

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
        return check_server_frames(np.concatenate(out), "live")

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
        return check_server_frames(np.concatenate(out), "live")
