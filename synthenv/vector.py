"""A natively batched vector env and a stable-baselines3 ``VecEnv`` adapter.

:class:`SoundMatchVectorEnv` steps ``num_envs`` sound-matching episodes with **one backend call per
step** (one scsynth score for nrt, one bundle for live, one array computation for numpy) and one
batched feature extraction. It reuses :class:`~synthenv.env.SoundMatchEnv`'s episode logic
(spaces, actions, reward, termination) instead of copying it, so sub-env ``i`` seeded with
``seed + i`` behaves exactly like a single env reset with that seed.

Autoreset mode: ``SAME_STEP``. When sub-env ``i`` terminates or truncates, the observation
returned for it is already the first observation of its next episode; the last observation and
info of the finished episode are in ``infos["final_obs"][i]`` and ``infos["final_info"][i]``
(masks ``infos["_final_obs"]``, ``infos["_final_info"]``).

``gym.make_vec("synthenv/SoundMatch-v0", num_envs=64, ...)`` builds it (it is the env's
``vector_entry_point``); :func:`make_sb3_vec_env` wraps it for stable-baselines3.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from synthenv import distances
from synthenv.env import Episodes, SoundMatchEnv


class SoundMatchVectorEnv(VectorEnv):
    """``num_envs`` SoundMatch episodes stepped together; kwargs are :class:`SoundMatchEnv`'s."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, num_envs: int = 16, **env_kwargs: Any) -> None:
        if not (isinstance(num_envs, int | np.integer) and num_envs >= 1):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.core = SoundMatchEnv(**env_kwargs)
        self.num_envs = int(num_envs)
        self.render_mode = self.core.render_mode
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._ep: Episodes | None = None

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Reset every sub-env. ``seed``: an int (sub-env ``i`` gets ``seed + i``), a list, or None."""
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, int | np.integer):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"{len(seeds)} seeds for {self.num_envs} sub-envs")
        for i, s in enumerate(seeds):
            if s is not None or self._ep is None:
                self._rngs[i], _ = gym.utils.seeding.np_random(s)
        self._ep = self.core.begin_episodes(self._rngs, [dict(options or {})] * self.num_envs)
        return self.core.observe(self._ep), self._batch_infos(self._ep)

    def step(self, actions):
        if self._ep is None:
            raise RuntimeError("call reset() before step()")
        a = self.core.check_actions(actions, batched=True, n=self.num_envs)
        obs, rewards, terminated, truncated = self.core.advance(self._ep, a)
        infos = self._batch_infos(self._ep)
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            final_obs = obs[done].copy()
            final_infos = self.core.infos(self._ep, list(done))
            fresh = self.core.begin_episodes([self._rngs[i] for i in done], [{}] * done.size)
            fresh_obs = self.core.observe(fresh)  # first: what it computes (the suggested move) is carried over
            self._ep = _replace_rows(self._ep, done, fresh)
            obs = obs.copy()
            obs[done] = fresh_obs
            fresh_infos = self._batch_infos(fresh)
            for key, value in fresh_infos.items():
                infos[key][done] = value
            for k, i in enumerate(done):
                infos = self._add_info(infos, {"final_obs": final_obs[k], "final_info": final_infos[k]}, int(i))
        return obs, rewards, terminated, truncated, infos

    def render(self):
        if self.render_mode is None or self._ep is None:
            return None
        return tuple(self.core.render_image(self._ep, i) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        core = getattr(self, "core", None)  # absent when the constructor failed (gymnasium still closes on __del__)
        if core is not None:
            core.close()

    def _batch_infos(self, ep: Episodes) -> dict:
        """gymnasium's dict of arrays for B episodes: distance, success, step (and every metric with
        ``metrics=True``; with ``"final"`` they are in ``final_info``), each with its ``_key`` mask."""
        out: dict[str, Any] = {"distance": ep.d.copy(), "success": ep.success.copy(), "step": ep.steps.copy()}
        if self.core.metrics is True:
            out.update({k: v.astype(np.float64) for k, v in distances.compute_all(ep.target, ep.current).items()})
        for k in list(out):
            out["_" + k] = np.ones(len(ep.d), dtype=bool)
        return out


def _replace_rows(ep: Episodes, rows: np.ndarray, fresh: Episodes) -> Episodes:
    """``ep`` with ``rows`` replaced by the episodes of ``fresh`` (in order)."""
    targets = list(ep.targets)
    for k, i in enumerate(rows):
        targets[i] = fresh.targets[k]

    def put(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        if a is None or b is None:
            return None
        a = a.copy()
        a[rows] = b
        return a

    return Episodes(
        targets, ep.target.replace_rows(rows, fresh.target), put(ep.x, fresh.x),
        ep.current.replace_rows(rows, fresh.current), put(ep.d0, fresh.d0), put(ep.d, fresh.d),
        put(ep.steps, fresh.steps), put(ep.success, fresh.success), put(ep.guess, fresh.guess),
        put(ep.best, fresh.best), put(ep.move, fresh.move),
    )  # fmt: skip


def make_sb3_vec_env(num_envs: int = 16, **env_kwargs: Any):
    """A stable-baselines3 ``VecEnv`` over :class:`SoundMatchVectorEnv`: ``PPO("MlpPolicy", venv)``.
    Needs the train extra (``pip install 'synthenv[train]'``)."""
    from synthenv.sb3 import SB3VecEnv

    return SB3VecEnv(SoundMatchVectorEnv(num_envs, **env_kwargs))
