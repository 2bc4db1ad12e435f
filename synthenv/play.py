"""Hear sounds on a live scsynth: a target recording, a synth patch, or a trained agent at work.

:class:`Stage` is one session on a real-time scsynth (ours, through the running JACK server, i.e.
your sound card; or ``server="host:port"`` of one you run) that plays notes on outputs 0 and 1.
:func:`play` plays a target and a patch; :func:`play_agent` lets a trained policy search for a
target and plays every candidate it tries, so you hear it converge.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import soundfile

from synthenv.backends.jack import jack_running as _jack_running
from synthenv.backends.live import MAX_CLIENTS, WHY_MAX_CLIENTS, private_ranges
from synthenv.backends.scserver import LiveServer
from synthenv.spec import SynthSpec
from synthenv.supercollider import PLAYER_SYNTHDEF, osc_message
from synthenv.synths import get_synth
from synthenv.targets import load_audio

OUTPUTS = (0, 1)  # both channels of a stereo sound card


class Stage:
    """A live scsynth session that plays one note at a time on :data:`OUTPUTS` (closed by ``close()``
    or ``with``)."""

    def __init__(self, server: str | None = None, jack: str = "auto", gap: float = 0.5, log=print) -> None:
        if server is None and jack == "auto" and not _jack_running():
            log("no JACK server is running: playing into a private dummy JACK server, so nothing will be heard. "
                "Start JACK with your sound card, or pass --server HOST:PORT of a running scsynth.")  # fmt: skip
        self.gap = gap
        self.live = LiveServer(server=server, jack=jack, client_ids=MAX_CLIENTS, client_ids_reason=WHY_MAX_CLIENTS)
        self._tmp = tempfile.TemporaryDirectory(prefix="synthenv-play-")
        self._buf: int | None = None

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load_target(self, path: str | Path, duration: float) -> None:
        """Load an audio file (mono-mixed, at the server's rate, trimmed to ``duration``) into a buffer."""
        live = self.live
        live.load_synthdef(PLAYER_SYNTHDEF)
        sr = int(live.status().get("nominal_sr") or 22050)
        wav = Path(self._tmp.name) / "target.wav"
        soundfile.write(wav, load_audio(path, sr, duration), sr, subtype="FLOAT")
        self._buf = private_ranges(live.client_id)[2][0]  # a player buffer of our own client ID
        live.request(osc_message("/b_allocRead", self._buf, str(wav)),
                     lambda a, p: a == "/done" and p[:1] == ["/b_allocRead"])  # fmt: skip

    def play_target(self, duration: float) -> None:
        if self._buf is None:
            raise ValueError("load_target() first")
        self._note(duration, [PLAYER_SYNTHDEF, "buf", self._buf])

    def play_patch(self, spec: SynthSpec | str, values: np.ndarray, duration: float) -> None:
        """Play ``spec`` with physical param values ``[P]``."""
        spec = get_synth(spec)
        self.live.load_synthdef(spec)
        args = [a for name, v in zip(spec.names, values, strict=True) for a in (name, float(v))]
        self._note(duration, [spec.synthdef, *args])

    def _note(self, duration: float, args: list) -> None:
        live = self.live
        ids = [live.new_node_id() for _ in OUTPUTS]
        live.start_nodes([osc_message("/s_new", args[0], i, 0, live.group, "out", o, *args[1:])
                          for i, o in zip(ids, OUTPUTS, strict=True)], ids)  # fmt: skip
        time.sleep(duration + self.gap)
        live.send(osc_message("/g_freeAll", live.group))
        live.sync()  # raises if the server died meanwhile

    def close(self) -> None:
        try:
            if self._buf is not None and self.live.alive:
                self.live.send(osc_message("/b_free", self._buf))
        finally:
            self.live.close()
            self._tmp.cleanup()


def play(
    synth: str | SynthSpec,
    params: Mapping[str, float] | None = None,
    *,
    target: str | Path | None = None,
    server: str | None = None,
    jack: str = "auto",
    duration: float = 1.0,
    gap: float = 0.5,
    repeat: int = 1,
    log=print,
) -> None:
    """Play ``target`` (an audio file, if given) and then ``synth`` with ``params`` (physical values,
    defaults for the rest), ``repeat`` times."""
    spec = get_synth(synth)
    values = spec.from_dicts(params or {})[0]
    with Stage(server, jack, gap, log) as stage:
        if target is not None:
            stage.load_target(target, duration)
        for _ in range(max(1, repeat)):
            if target is not None:
                log(f"target: {target}")
                stage.play_target(duration)
            log(f"{spec.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in spec.to_dict(values).items()))
            stage.play_patch(spec, values, duration)


def play_agent(
    policy: str | Path,
    target: str | Path,
    *,
    steps: int = 20,
    backend: str | None = None,
    server: str | None = None,
    jack: str = "auto",
    gap: float = 0.25,
    seed: int = 0,
    log=print,
) -> list[float]:
    """Let the trained policy in run folder ``policy`` search for the sound of ``target`` for ``steps``
    steps (on its training backend unless ``backend`` is given) and play, on the live server, the
    target, then every candidate it tries, then the target and its best candidate again. Returns the
    distance after each step."""
    from synthenv.agents.evaluate import check_compatible
    from synthenv.agents.policy import env_kwargs_for_eval, load_policy, policy_search
    from synthenv.env import SoundMatchEnv
    from synthenv.errors import SynthenvError

    if steps < 1:
        raise SynthenvError(f"steps must be at least 1, got {steps}")
    pol = load_policy(policy)
    kw = {"targets": str(target)}
    if backend is not None:
        kw["backend"] = backend
    env = SoundMatchEnv(**env_kwargs_for_eval(pol.config, **kw))
    try:
        check_compatible(pol, env)
        spec = env.synth
        with Stage(server, jack, gap, log) as stage:
            stage.load_target(target, env.duration)
            distances: list[float] = []

            def hear(step: int, info: dict) -> None:
                if step == 0:  # reset: the target
                    log(f"target: {target} (pitch {env.target.f0 or float('nan'):.1f} Hz)")
                    stage.play_target(env.duration)
                    return
                distances.append(info["distance"])
                log(f"step {step:>3}: {env.distance} {info['distance']:.3f}")
                stage.play_patch(spec, spec.from_dicts(info["params"])[0], env.duration)

            best = policy_search(env, pol, steps + 1, {"target_index": 0}, seed=seed, on_step=hear)
            log(f"target, then the best candidate ({env.distance} {best.distance:.3f})")
            stage.play_target(env.duration)
            stage.play_patch(spec, spec.from_dicts(env.full_params(best.x))[0], env.duration)
            return distances
    finally:
        env.close()
