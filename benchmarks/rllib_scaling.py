#!/usr/bin/env python
"""Env-steps/s of PPO training: the stable-baselines3 engine and the RLlib engine with 1 and 2 env
runners, on the numpy and nrt backends, side by side in one run; then an estimate for N nodes.

    .venv/bin/python benchmarks/rllib_scaling.py [--synth fm] [--backends numpy,nrt] [--runners 1,2]
                                                 [--seconds 20] [--json out.json]

Every row uses the same configuration (``make_config``: the shipped hyperparameters, 64 envs in all,
4,096 env steps per PPO update, 10 epochs of minibatches of 512) and trains for about ``--seconds``
after one warm-up update. Columns:

- **train env-steps/s**: env steps / wall time of whole PPO iterations (sampling + learning), what a
  training run gets;
- **sampling env-steps/s**: env steps / time spent sampling with the policy (RLlib: every runner samples
  its share of an update at once, for ``--seconds / 2``; SB3: time in ``collect_rollouts``), what more
  env runners can speed up;
- **learn s/update**: the rest of an update's time (the driver's learner on the 4,096 steps, weight
  and filter syncs).

RLlib rows run on a private local Ray instance (started and stopped here; one at a time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np


def sb3_row(synth: str, backend: str, seconds: float) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from synthenv.agents.train import make_config
    from synthenv.vector import make_sb3_vec_env

    cfg = make_config(synth=synth, backend=backend)
    venv = VecNormalize(VecMonitor(make_sb3_vec_env(cfg["n_envs"], **dict(cfg["env"], metrics=False))),
                        norm_obs=True, norm_reward=False, clip_obs=10.0)  # fmt: skip
    per_update = cfg["n_envs"] * cfg["ppo"]["n_steps"]

    class Rollouts(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.sampling, self.t = 0.0, 0.0

        def _on_rollout_start(self) -> None:
            self.t = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.sampling += time.perf_counter() - self.t

        def _on_step(self) -> bool:
            return True

    try:
        model = PPO("MlpPolicy", venv, seed=0, device="cpu", verbose=0, **cfg["ppo"])
        model.learn(per_update)  # warm-up
        t0 = time.perf_counter()
        model.learn(per_update)
        one = time.perf_counter() - t0
        updates = max(1, math.ceil(seconds / one) - 1)
        cb = Rollouts()
        t0 = time.perf_counter()
        model.learn(updates * per_update, callback=cb, reset_num_timesteps=False)
        wall = time.perf_counter() - t0
    finally:
        venv.close()
    steps = updates * per_update
    return {"engine": "sb3", "backend": backend, "runners": "-", "envs": f"{cfg['n_envs']}", "steps": steps,
            "train_sps": steps / wall, "sample_sps": steps / cb.sampling,
            "learn_s": (wall - cb.sampling) / updates}  # fmt: skip


def rllib_row(synth: str, backend: str, runners: int, seconds: float) -> dict:
    from synthenv.agents.rllib import build_algorithm, runner_layout
    from synthenv.agents.train import make_config

    cfg = make_config(synth=synth, backend=backend, engine="rllib", num_env_runners=runners)
    cfg["engine"] = "rllib"
    n, per = runner_layout(cfg)
    algo = build_algorithm(cfg)
    batch = cfg["ppo"]["n_steps"] * max(1, n) * per
    try:
        algo.train()  # warm-up: the runners' first reset, torch's first passes
        steps, iters = 0, 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            steps += int(algo.train()["env_runners"]["num_env_steps_sampled"])
            iters += 1
        wall = time.perf_counter() - t0
        # sampling alone: every runner samples its share of one update at once, as in training
        share = cfg["ppo"]["n_steps"] * per
        group = algo.env_runner_group
        sample = (lambda r: r.sample(num_timesteps=share, explore=True)) if n else None
        rounds = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            if n:
                group.foreach_env_runner(sample, local_env_runner=False)
            else:
                group.local_env_runner.sample(num_timesteps=share, explore=True)
            rounds += 1
        sample_sps = rounds * batch / (time.perf_counter() - t0)
    finally:
        algo.stop()
    return {"engine": "rllib", "backend": backend, "runners": str(n), "envs": f"{n} x {per}", "steps": steps,
            "train_sps": steps / wall, "sample_sps": sample_sps,
            "learn_s": max(0.0, wall / iters - batch / sample_sps)}  # fmt: skip


def estimate(rows: list[dict], batch: int = 4096) -> list[str]:
    """Synchronous PPO: an update waits for ``batch`` steps from every runner, then learns on the driver.
    With N nodes sampling at the measured per-node rate, an update takes batch / (N * rate) + learn."""
    out = []
    for backend in sorted({r["backend"] for r in rows}):
        rl = [r for r in rows if r["engine"] == "rllib" and r["backend"] == backend]
        if not rl:
            continue
        best = max(rl, key=lambda r: r["sample_sps"])
        rate, learn = best["sample_sps"], float(np.median([r["learn_s"] for r in rl]))
        cells = []
        for nodes in (1, 2, 4, 8, 16):
            cells.append(f"{nodes} node{'s' if nodes > 1 else ''}: ~{batch / (batch / (nodes * rate) + learn):,.0f}")
        out.append(f"- {backend}: per node {rate:,.0f} sampling env-steps/s ({best['runners']} runners), learn "
                   f"{learn:.2f} s per {batch:,}-step update -> " + "; ".join(cells) +
                   f" env-steps/s (ceiling {batch / learn:,.0f}: the learner)")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synth", default="fm")
    ap.add_argument("--backends", default="numpy,nrt")
    ap.add_argument("--runners", default="1,2")
    ap.add_argument("--seconds", type=float, default=20.0, help="training time per row after warm-up")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of the learner (SB3's process, RLlib's driver; default 1: a shared machine's "
                    "load makes torch's thread pool stall)")  # fmt: skip
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    import signal

    import ray
    import torch

    torch.set_num_threads(args.threads)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # stop Ray on SIGTERM too

    from synthenv.agents.rllib import import_ray

    import_ray()
    runners = [int(r) for r in args.runners.split(",")]
    rows = []
    for backend in args.backends.split(","):
        rows.append(sb3_row(args.synth, backend, args.seconds))
        print(rows[-1], flush=True)
        ray.init(num_cpus=max(os.cpu_count() or 1, 1 + max(runners)), include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")  # fmt: skip
        try:
            for n in runners:
                rows.append(rllib_row(args.synth, backend, n, args.seconds))
                print(rows[-1], flush=True)
        finally:
            ray.shutdown()
    print(f"\n{args.synth}, {os.cpu_count()} cores, torch threads {args.threads}, load average at the end: "
          f"{os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| engine | backend | env runners | envs | train env-steps/s | sampling env-steps/s | learn s/update |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['engine']} | {r['backend']} | {r['runners']} | {r['envs']} | {r['train_sps']:,.0f} | "
              f"{r['sample_sps']:,.0f} | {r['learn_s']:.2f} |")  # fmt: skip
    print("\nEstimate for N nodes (each like this one), synchronous PPO with 4,096 steps per update:")
    print("\n".join(estimate(rows)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
