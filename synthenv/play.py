"""Hear sounds on a live scsynth: a target recording, then a synth patch (the agent's sound)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import soundfile

from synthenv.backends.live import LiveServer, _jack_running
from synthenv.spec import SynthSpec
from synthenv.supercollider import PLAYER_SYNTHDEF, osc_message
from synthenv.synths import get_synth
from synthenv.targets import load_audio

OUTPUTS = (0, 1)  # both channels of a stereo sound card


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
    defaults for the rest), ``repeat`` times, on a live scsynth: ours (through the running JACK
    server, i.e. your sound card) or ``server="host:port"``."""
    spec = get_synth(synth)
    values = spec.from_dicts(params or {})[0]
    if server is None and jack == "auto" and not _jack_running():
        log("no JACK server is running: playing into a private dummy JACK server, so nothing will be heard. "
            "Start JACK with your sound card, or pass --server HOST:PORT of a running scsynth.")  # fmt: skip
    live = LiveServer(server=server, jack=jack)
    try:
        live.load_synthdef(spec)
        buf = None
        with tempfile.TemporaryDirectory(prefix="synthenv-play-") as tmp:
            if target is not None:
                live.load_synthdef(PLAYER_SYNTHDEF)
                sr = int(live.status().get("nominal_sr") or 22050)
                path = Path(tmp) / "target.wav"
                soundfile.write(path, load_audio(target, sr, duration), sr, subtype="FLOAT")
                buf = 1000 + live.client_id
                live.request(osc_message("/b_allocRead", buf, str(path)),
                             lambda a, p: a == "/done" and p[:1] == ["/b_allocRead"])  # fmt: skip
            for _ in range(max(1, repeat)):
                if buf is not None:
                    log(f"target: {target}")
                    live.send(*(osc_message("/s_new", PLAYER_SYNTHDEF, live.new_node_id(), 0, live.group,
                                            "out", o, "buf", buf) for o in OUTPUTS), bundle=True)  # fmt: skip
                    time.sleep(duration + gap)
                    live.send(osc_message("/g_freeAll", live.group))
                log(f"{spec.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in spec.to_dict(values).items()))
                args = [a for name, v in zip(spec.names, values, strict=True) for a in (name, float(v))]
                live.send(*(osc_message("/s_new", spec.synthdef, live.new_node_id(), 0, live.group, "out", o, *args)
                            for o in OUTPUTS), bundle=True)  # fmt: skip
                time.sleep(duration + gap)
                live.send(osc_message("/g_freeAll", live.group))
            if buf is not None:
                live.send(osc_message("/b_free", buf))
            live.sync()
    finally:
        live.close()
