#!/usr/bin/env python
"""Train PPO (stable-baselines3) on SoundMatch-v0 with the numpy backend, then compare its final
distance with a random policy on held-out targets.

    .venv/bin/python agents/train_ppo.py --synth fm --timesteps 20000 -o runs/fm-ppo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import synthenv


def evaluate(env: gym.Env, policy, episodes: int, seed: int) -> dict[str, float]:
    """Mean start and final distance over ``episodes`` held-out targets (seeds ``seed + i``)."""
    start, final = [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        start.append(info["distance"])
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(policy(obs))
            done = term or trunc
        final.append(info["distance"])
    return {"start": float(np.mean(start)), "final": float(np.mean(final))}


def main() -> None:
    from stable_baselines3 import PPO

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synth", default="fm", choices=synthenv.available_synths())
    ap.add_argument("--timesteps", type=int, default=20000)
    ap.add_argument("--max-steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("-o", "--output", default="runs/ppo")
    args = ap.parse_args()

    kwargs = {"synth": args.synth, "backend": "numpy", "max_steps": args.max_steps, "metrics": False}
    env = gym.make(synthenv.ENV_ID, **kwargs)
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, seed=args.seed, device="cpu", verbose=0)
    model.learn(total_timesteps=args.timesteps, progress_bar=True)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model")

    eval_env = gym.make(synthenv.ENV_ID, **kwargs)
    held_out = 10_000  # evaluation seeds never used in training
    ppo = evaluate(eval_env, lambda o: model.predict(o, deterministic=True)[0], args.eval_episodes, held_out)
    rand = evaluate(eval_env, lambda o: eval_env.action_space.sample(), args.eval_episodes, held_out)
    report = {"config": vars(args), "ppo": ppo, "random_policy": rand}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
