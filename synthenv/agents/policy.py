"""Load a trained run and use its policy as a search method with a render budget."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthenv.agents.search import SearchResult
from synthenv.env import SoundMatchEnv
from synthenv.errors import SynthenvError


@dataclass
class Policy:
    """A trained model, its observation normalisation and the env config it was trained on."""

    model: object
    obs_mean: np.ndarray | None
    obs_var: np.ndarray | None
    config: dict
    recurrent: bool = False
    clip_obs: float = 10.0
    epsilon: float = 1e-8
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0), init=False, repr=False)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)`` as VecNormalize does (float32);
        ``obs`` unchanged when there are no statistics (or they are folded into an exported model)."""
        if self.obs_mean is None:
            return obs
        std = np.sqrt(self.obs_var + np.float32(self.epsilon))
        return np.clip((obs - self.obs_mean) / std, -self.clip_obs, self.clip_obs).astype(np.float32)

    @property
    def deterministic(self) -> bool:
        """True: the policy acts with its distribution's mean; False when it samples (:func:`samples_actions`)."""
        return not samples_actions(self.config)

    def seed(self, seed: int) -> None:
        """Seed the sampling of a policy that samples (see :attr:`deterministic`), so that a search is
        reproducible (torch's global generator is left as it was)."""
        self._rng = np.random.default_rng(int(seed))

    def _predict(self, o: np.ndarray, **kw):
        if self.deterministic:
            return self.model.predict(o, deterministic=True, **kw)
        import torch

        with torch.random.fork_rng(devices=[]):  # the policy samples with torch: a private, seeded stream
            torch.manual_seed(int(self._rng.integers(2**62)))
            return self.model.predict(o, deterministic=False, **kw)

    def act(self, obs: np.ndarray, state=None, episode_start: np.ndarray | None = None):
        """The action for one observation ``[D]`` (see :attr:`deterministic`): ``(action [A], state)``;
        ``state`` is the LSTM state of a recurrent policy (pass it back in; ``episode_start`` True on
        the first step)."""
        o = self.normalize(np.asarray(obs, dtype=np.float32)[None])
        if self.recurrent:
            start = np.ones((1,), dtype=bool) if episode_start is None else episode_start
            action, state = self._predict(o, state=state, episode_start=start)
        else:
            action, _ = self._predict(o)
        return np.clip(action[0], -1.0, 1.0), state


def samples_actions(config: dict) -> bool:
    """Whether the policy of a run with this config samples its actions: one trained with
    ``step_from="best"`` proposes moves from the best candidate so far, and its mean would propose a
    rejected move again."""
    return config.get("env", {}).get("step_from", "current") == "best"


def norm_path(model_path: Path) -> Path:
    """Where the observation statistics of a saved model live: ``vecnormalize.pkl`` beside ``model.zip``,
    ``model_N_steps.pkl`` beside a checkpoint ``model_N_steps.zip``."""
    return model_path.parent / "vecnormalize.pkl" if model_path.name == "model.zip" else model_path.with_suffix(".pkl")


def load_policy(run_dir: str | Path, checkpoint: str | None = None) -> Policy:
    """Load ``RUN_DIR/model.zip`` (or a checkpoint) with ``vecnormalize.pkl`` and ``config.json``; or an
    exported policy file (``.onnx`` or ``.pt`` from ``synthenv export``), without stable-baselines3."""
    run = Path(run_dir)
    if run.is_file() or run.suffix in (".onnx", ".pt"):
        from synthenv.agents.export import ExportedModel

        if checkpoint:
            raise SynthenvError(f"{run} is an exported policy: a checkpoint applies to run folders only")
        model = ExportedModel(run)  # normalisation and clipping are inside the file
        return Policy(model, None, None, model.metadata["config"])
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise SynthenvError(f"{run} is not a synthenv run folder (no config.json); train one with `synthenv train`")
    config = json.loads(cfg_path.read_text())
    if config.get("engine") == "rllib":  # a Ray RLlib run (synthenv train --engine rllib): RUN/model/, no model.zip
        from synthenv.agents.rllib import load_rllib_policy

        return load_rllib_policy(run, config, checkpoint)
    model_path = Path(checkpoint) if checkpoint else run / "model.zip"
    if not model_path.is_file():
        raise SynthenvError(
            f"no model at {model_path}: the run has not finished; pass a checkpoint from {run}/checkpoints"
        )
    recurrent = config.get("algo") == "recurrent_ppo"
    if recurrent:
        from sb3_contrib import RecurrentPPO as Algo
    else:
        from stable_baselines3 import PPO as Algo
    model = Algo.load(model_path, device="cpu")
    mean = var = None
    clip_obs, epsilon = 10.0, 1e-8
    norm = norm_path(model_path)  # a checkpoint's own statistics, else the run's
    if not norm.is_file():
        norm = run / "vecnormalize.pkl"
    if norm.is_file():
        import pickle

        with open(norm, "rb") as f:
            stats = pickle.load(f)
        if getattr(stats, "norm_obs", True):
            mean, var = stats.obs_rms.mean.astype(np.float32), stats.obs_rms.var.astype(np.float32)
            clip_obs, epsilon = float(stats.clip_obs), float(stats.epsilon)
    return Policy(model, mean, var, config, recurrent, clip_obs, epsilon)


def policy_search(env: SoundMatchEnv, policy: Policy, budget: int, options: dict | None = None,
                  seed: int = 0, on_step=None) -> SearchResult:  # fmt: skip
    """Reset ``env`` on a target (``options``) and let the policy act for ``budget - start`` steps:
    the reset spends ``start = env.start_renders`` renders on the starting sound (one, or the inverse
    model's starts), each step one more. Returns the best candidate rendered.
    ``on_step(step, info)``, if given, is called after the reset (step 0) and after every step."""
    start_renders = getattr(env, "start_renders", 1)
    if budget < start_renders:
        raise SynthenvError(f"--budget must be at least {start_renders} render(s) here: the episode's start renders "
                            f"{start_renders} (the inverse model's starts), got {budget}")  # fmt: skip
    obs, info = env.reset(seed=seed, options=options)
    policy.seed(seed)
    if on_step is not None:
        on_step(0, info)
    best_d, best_x = info["distance"], env.search_x
    curve = [best_d] * start_renders
    state, start = None, np.ones((1,), dtype=bool)
    for step in range(1, budget - start_renders + 1):
        action, state = policy.act(obs, state, start)
        start = np.zeros((1,), dtype=bool)
        obs, _, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(step, info)
        if info["distance"] < best_d:
            best_d, best_x = info["distance"], env.search_x
        curve.append(best_d)
        if terminated or truncated:
            break
    curve += [best_d] * (budget - len(curve))
    return SearchResult(best_x, float(best_d), budget, curve)


def env_kwargs_for_eval(config: dict, **overrides) -> dict:
    """The training env's kwargs, with episodes long enough for any budget and metrics off."""
    kw = dict(config["env"])
    kw.update(overrides)
    kw["max_steps"] = 10**6
    kw["metrics"] = False
    kw["success_threshold"] = 0.0  # search to the end of the budget, as the baselines do
    return kw
