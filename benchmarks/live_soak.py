#!/usr/bin/env python
"""Soak the live backend: many env steps on one real-time scsynth, checking that no analysis reply
is lost and that the server's node count stays flat.

    .venv/bin/python benchmarks/live_soak.py [--steps 2000] [--duration 0.25] [--synth fm]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from synthenv.env import SoundMatchEnv

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--steps", type=int, default=2000)
ap.add_argument("--duration", type=float, default=0.25, help="seconds per note (real time)")
ap.add_argument("--synth", default="fm")
args = ap.parse_args()

env = SoundMatchEnv(synth=args.synth, backend="live", duration=args.duration, max_steps=50)
server = env.backend.server
rng = np.random.default_rng(0)
renders = 0
env.reset(seed=0)
renders += 2  # target + start
start_status = server.status()
print(f"scsynth pid {server.pid} at {server.address}; status at start: {start_status}")
t0 = time.monotonic()
for step in range(1, args.steps + 1):
    obs, reward, term, trunc, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
    renders += 1
    if term or trunc:
        env.reset()
        renders += 2
    if step % 250 == 0 or step == args.steps:
        st = server.status()
        print(
            f"step {step:5d}  {time.monotonic() - t0:7.1f} s  synths {st['synths']:.0f}  groups {st['groups']:.0f}  "
            f"ugens {st['ugens']:.0f}  frames {server.frames_received}"
        )
expected = renders * env.backend.n_frames
end_status = server.status()
env.close()
print(
    f"steps {args.steps}, renders {renders}, frames expected {expected}, received {server.frames_received}, "
    f"lost {expected - server.frames_received}"
)
print(
    f"nodes at start: synths {start_status['synths']:.0f} groups {start_status['groups']:.0f}; "
    f"at end: synths {end_status['synths']:.0f} groups {end_status['groups']:.0f}"
)
