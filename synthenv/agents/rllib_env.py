"""The env that Ray RLlib's env runners step: :class:`~synthenv.vector.SoundMatchVectorEnv` with
gymnasium's default ``NEXT_STEP`` autoreset, and the creator registered with ``ray.tune``.

This module does not import ray: the creator runs inside each env runner process (it is found
there by its module path) and is tested without a cluster.

Why a second autoreset mode: RLlib's ``SingleAgentEnvRunner`` (Ray 2.60) assumes ``NEXT_STEP``.
When sub-env ``i`` ends, it records the observation returned on that step as the episode's last one
and treats the observation of the *next* step as the new episode's reset observation. With
synthenv's ``SAME_STEP`` vector env it would store the next episode's first observation as the
last one (bootstrapping truncated episodes from the wrong state) and drop the first transition of
every episode. Here, a sub-env that ended is reset on the following step instead: its action is
ignored, its reward is 0 and its observation is its new episode's first. Each step is still one
backend call for the sub-envs that act (and one for those that start a new episode).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from synthenv.env import Episodes, SoundMatchEnv
from synthenv.vector import SoundMatchVectorEnv, _replace_rows

#: the name synthenv's env is registered under in Ray's registry (``ray.tune.registry.register_env``)
RLLIB_ENV_NAME = "synthenv-SoundMatch-v0"


class NextStepSoundMatchVectorEnv(SoundMatchVectorEnv):
    """:class:`SoundMatchVectorEnv` with ``NEXT_STEP`` autoreset (see the module doc), for RLlib.

    ``reset(seed=s)`` with an int seeds sub-env ``i`` with ``s * num_envs + i``: RLlib seeds env
    runner ``w`` with ``seed + w``, so the runners' sub-envs draw disjoint target streams.
    """

    metadata = {**SoundMatchVectorEnv.metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 16, **env_kwargs: Any) -> None:
        super().__init__(num_envs, **env_kwargs)
        self._ended = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if isinstance(seed, int | np.integer):
            seed = [int(seed) * self.num_envs + i for i in range(self.num_envs)]
        self._ended = np.zeros(self.num_envs, dtype=bool)
        return super().reset(seed=seed, options=options)

    def step(self, actions):
        if self._ep is None:
            raise RuntimeError("call reset() before step()")
        a = self.core.check_actions(actions, batched=True, n=self.num_envs)
        n = self.num_envs
        rewards = np.zeros(n, dtype=np.float64)
        terminated, truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        acting, starting = np.flatnonzero(~self._ended), np.flatnonzero(self._ended)
        if acting.size == n:
            _, rewards, terminated, truncated = self.core.advance(self._ep, a)
        elif acting.size:
            sub = _take_rows(self._ep, acting)
            _, rewards[acting], terminated[acting], truncated[acting] = self.core.advance(sub, a[acting])
            self._ep = _replace_rows(self._ep, acting, sub)
        if starting.size:  # the episodes that ended on the previous step start again; their actions are ignored
            fresh = self.core.begin_episodes([self._rngs[i] for i in starting], [{}] * starting.size)
            self._ep = _replace_rows(self._ep, starting, fresh)
        self._ended = terminated | truncated
        return self.core.observe(self._ep), rewards, terminated, truncated, self._batch_infos(self._ep)


def _take_rows(ep: Episodes, rows: np.ndarray) -> Episodes:
    """The episodes ``rows`` of ``ep`` as their own batch (arrays copied)."""
    return Episodes(
        [ep.targets[i] for i in rows], ep.target.take(rows), ep.x[rows], ep.current.take(rows), ep.d0[rows],
        ep.d[rows], ep.steps[rows], ep.success[rows], None if ep.guess is None else ep.guess[rows],
        None if ep.best is None else ep.best[rows], None if ep.move is None else ep.move[rows],
    )  # fmt: skip


def make_env(env_config: dict) -> SoundMatchEnv | NextStepSoundMatchVectorEnv:
    """RLlib's env creator: ``env_config`` holds :class:`SoundMatchEnv` kwargs; with ``num_envs`` (RLlib
    adds it when ``gym_env_vectorize_mode="vector_entry_point"``) it returns the batched vector env.
    RLlib's ``EnvContext`` fields (``worker_index``, ...) are attributes, not kwargs, and are ignored:
    live servers pick free ports themselves (and retry on a clash), so runners on one host never share one."""
    kwargs = dict(env_config)
    num_envs = kwargs.pop("num_envs", None)
    if num_envs is None:
        return SoundMatchEnv(**kwargs)
    return NextStepSoundMatchVectorEnv(int(num_envs), **kwargs)
