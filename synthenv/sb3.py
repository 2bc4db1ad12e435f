"""stable-baselines3 integration: a ``VecEnv`` adapter for natively batched gymnasium vector envs."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from synthenv.vector import SoundMatchVectorEnv


def _unbatch(infos: dict, i: int) -> dict:
    """Sub-env ``i``'s info from gymnasium's batched info dict (nested dicts of arrays with ``_key`` masks)."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_") or not infos.get("_" + key, np.ones(i + 1, bool))[i]:
            continue
        item = _unbatch(value, i) if isinstance(value, dict) else value[i]
        out[key] = item.item() if isinstance(item, np.generic) else item
    return out


class SB3VecEnv(VecEnv):
    """SB3's ``VecEnv`` interface on a natively batched gymnasium ``VectorEnv`` (SAME_STEP autoreset).

    For a sub-env whose episode ended on this step, ``infos[i]`` describes that episode, as SB3
    expects: its last ``distance``, ``success``, ``step`` (and ``metrics`` with ``metrics="final"``),
    plus ``terminal_observation``, ``TimeLimit.truncated`` and ``is_success``; the returned
    observation is already the next episode's first."""

    def __init__(self, venv: SoundMatchVectorEnv) -> None:
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.render_mode = venv.render_mode
        self._actions: np.ndarray | None = None

    def reset(self):
        seeds = [s for s in self._seeds] if any(s is not None for s in self._seeds) else None
        obs, infos = self.venv.reset(seed=seeds, options=self._options[0] if self._options else None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [self._info(infos, i) for i in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = terminated | truncated
        out = [self._info(infos, i) for i in range(self.num_envs)]
        for i in np.flatnonzero(dones):  # SB3 reads the episode that just ended from infos[i]
            out[i] = _unbatch(infos["final_info"], i)
            out[i]["terminal_observation"] = infos["final_obs"][i]
            out[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            out[i]["is_success"] = bool(out[i]["success"])  # SB3's success-rate logging reads this key
        return obs, rewards.astype(np.float32), dones, out

    @staticmethod
    def _info(infos: dict, i: int) -> dict:
        return {k: v[i] for k, v in infos.items() if not k.startswith("_") and k not in ("final_obs", "final_info")}

    def close(self) -> None:
        self.venv.close()

    def render(self, mode: str | None = None):
        images = self.venv.render()
        return None if images is None else images[0]

    def get_images(self):
        images = self.venv.render()
        return list(images) if images is not None else [None] * self.num_envs

    def get_attr(self, attr_name: str, indices=None) -> list:
        """The shared core's attribute, once per index (every sub-env shares one core)."""
        return [getattr(self.venv.core, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv.core, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        """Calls the method of the one shared core once; its result is given for every index."""
        result = getattr(self.venv.core, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
