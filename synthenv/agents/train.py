"""PPO training on the batched vector env, in the manner of rl-baselines3-zoo.

A run folder holds everything to reproduce and reuse a run::

    RUN/config.json        the full configuration (env kwargs, algorithm, hyperparameters, seed)
    RUN/model.zip          the final model            RUN/vecnormalize.pkl   observation statistics
    RUN/checkpoints/       periodic checkpoints (+ their normalisation statistics)
    RUN/tb/                TensorBoard logs            RUN/eval.csv           held-out evaluations
    RUN/learning_curve.png                            RUN/report.json, report.md
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import time
from pathlib import Path

import numpy as np

from synthenv.agents.policy import Policy, env_kwargs_for_eval, norm_path, policy_search
from synthenv.env import SoundMatchEnv, check_env_kwargs
from synthenv.errors import ConfigError, SynthenvError
from synthenv.synths import get_synth

#: shipped with the package (``agents/hyperparams/ppo.yml`` in a checkout links here)
HYPERPARAMS_FILE = Path(__file__).resolve().parent / "hyperparams" / "ppo.yml"

DEFAULTS: dict = {
    "algo": "ppo",
    "n_envs": 64,
    "total_timesteps": 200_000,
    "seed": 0,
    "normalize_obs": True,
    "eval_every": 50_000,
    "eval_targets": 16,
    "eval_budget": 50,
    "checkpoint_every": 100_000,
    "env": {"synth": "fm", "backend": "numpy", "max_steps": 50, "action_mode": "delta", "action_scale": 0.1},
    "ppo": {
        "learning_rate": 3e-4,
        "n_steps": 64,
        "batch_size": 512,
        "n_epochs": 10,
        "gamma": 0.95,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.0,
        "policy_kwargs": {"net_arch": [256, 256]},
    },
}
EVAL_SEED = 10_000  # held-out targets: training never draws from these seeds


def load_hyperparams(path: str | Path | None, key: str) -> dict:
    """Hyperparameters for ``key`` (e.g. ``"fm-numpy"``) from a YAML file keyed by env configuration,
    falling back to its ``default`` entry; ``{}`` if the file has neither."""
    import yaml

    p = Path(path) if path else HYPERPARAMS_FILE
    if not p.is_file():
        if path:
            raise SynthenvError(f"hyperparameter file not found: {p}")
        raise SynthenvError(f"the package's hyperparameter file is missing ({p}): reinstall synthenv")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SynthenvError(f"{p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SynthenvError(f"{p} must map env configurations (e.g. fm-numpy, default) to settings")
    return copy.deepcopy(data.get(key) or data.get("default") or {})


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(item: str) -> dict:
    """``"ppo.learning_rate=1e-4"`` -> ``{"ppo": {"learning_rate": 0.0001}}`` (values parsed as YAML)."""
    import yaml

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SynthenvError(f"an override is key=value (e.g. ppo.learning_rate=1e-4), got {item!r}")
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = yaml.safe_load(value)
    return out


def make_config(synth: str = "fm", backend: str = "numpy", features: str | None = None, timesteps: int | None = None,
                seed: int | None = None, n_envs: int | None = None, hyperparams: str | None = None,
                overrides: list[str] | None = None, recurrent: bool = False, engine: str = "sb3",
                num_env_runners: int | None = None, envs_per_runner: int | None = None) -> dict:  # fmt: skip
    """The full run configuration: defaults < hyperparameter file < explicit options < overrides.
    ``engine="rllib"`` trains on Ray RLlib with ``num_env_runners`` runners of ``envs_per_runner`` envs."""
    get_synth(synth)
    key = f"{synth}-{backend}" + (f"-{features}" if features else "")
    cfg = merge(DEFAULTS, load_hyperparams(hyperparams, key))
    cfg["env"] = merge(cfg["env"], {"synth": synth, "backend": backend})
    if features:
        cfg["env"]["features"] = features
    if recurrent:
        cfg["algo"] = "recurrent_ppo"
    if engine not in ("sb3", "rllib"):
        raise ConfigError(f"unknown engine {engine!r}: 'sb3' (stable-baselines3) or 'rllib' (Ray RLlib)")
    if engine == "rllib":
        cfg["engine"] = "rllib"
        cfg["num_env_runners"] = 1 if num_env_runners is None else num_env_runners
        if envs_per_runner is not None:
            cfg["envs_per_runner"] = envs_per_runner
    elif num_env_runners is not None or envs_per_runner is not None:
        raise ConfigError("--num-env-runners and --envs-per-runner go with --engine rllib")
    for k, v in (("total_timesteps", timesteps), ("seed", seed), ("n_envs", n_envs)):
        if v is not None:
            cfg[k] = v
    for item in overrides or []:
        cfg = merge(cfg, parse_override(item))
    cfg["hyperparams_key"] = key
    check_config(cfg)
    return cfg


def check_config(cfg: dict) -> None:
    """Check a run configuration without starting or writing anything: the env's kwargs (synth,
    backend, features, distance, ...), the algorithm, its hyperparameter names and the run sizes.
    Raises a :class:`SynthenvError` that says what is wrong."""
    for key in ("total_timesteps", "n_envs", "eval_every", "eval_targets", "eval_budget", "checkpoint_every"):
        value = cfg.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    if not isinstance(cfg.get("seed"), int):
        raise ConfigError(f"seed must be an integer, got {cfg.get('seed')!r}")
    if not isinstance(cfg.get("env"), dict):
        raise ConfigError(f"env must be a mapping of SoundMatchEnv arguments, got {cfg.get('env')!r}")
    check_env_kwargs(**cfg["env"])
    if cfg.get("engine", "sb3") == "rllib":
        from synthenv.agents.rllib import check_rllib_config

        return check_rllib_config(cfg)
    algos = {"ppo": ("stable_baselines3", "PPO"), "recurrent_ppo": ("sb3_contrib", "RecurrentPPO")}
    if cfg.get("algo") not in algos:
        raise ConfigError(f"unknown algo {cfg.get('algo')!r}: 'ppo' or 'recurrent_ppo'")
    module, name = algos[cfg["algo"]]
    try:
        algo = getattr(importlib.import_module(module), name)
    except ImportError:
        raise SynthenvError(f"training needs {module}: pip install 'synthenv[train]' (or ./setup.sh)") from None
    set_by_us = {"self", "policy", "env", "seed", "device", "tensorboard_log", "verbose", "_init_setup_model"}
    known = set(inspect.signature(algo.__init__).parameters) - set_by_us
    unknown = sorted(set(cfg.get("ppo") or {}) - known)
    if unknown:
        raise ConfigError(f"unknown {name} hyperparameter(s) {', '.join(unknown)}; {name} takes: "
                          f"{', '.join(sorted(known))}")  # fmt: skip


def eval_targets(synth: str, n: int, seed: int = EVAL_SEED) -> list[dict]:
    """``n`` held-out random targets (physical params), the same for every method and run."""
    spec = get_synth(synth)
    rng = np.random.default_rng(seed)
    return [spec.to_dict(spec.denormalize(x)) for x in rng.random((n, spec.n_params))]


def evaluate_policy(policy: Policy, targets: list[dict], budget: int) -> list[float]:
    env = SoundMatchEnv(**env_kwargs_for_eval(policy.config))
    try:
        return [
            policy_search(env, policy, budget, {"target_params": t}, seed=i).distance for i, t in enumerate(targets)
        ]
    finally:
        env.close()


def train(config: dict, out_dir: str | Path, resume: bool = False, progress_bar: bool = True, log=print,
          address: str | None = None) -> Path:  # fmt: skip
    """Train per ``config`` into ``out_dir`` (continue from its last checkpoint with ``resume``). The
    configuration is checked and the envs are made before anything is written. A config with
    ``"engine": "rllib"`` trains on Ray RLlib (``address``: a running Ray cluster, see
    :func:`synthenv.agents.rllib.train_rllib`)."""
    stored = Path(out_dir) / "config.json"
    engine = json.loads(stored.read_text()).get("engine", "sb3") if resume and stored.is_file() else None
    if (engine or config.get("engine", "sb3")) == "rllib":
        from synthenv.agents.rllib import train_rllib

        return train_rllib(config, out_dir, resume=resume, progress_bar=progress_bar, address=address, log=log)
    from stable_baselines3.common.vec_env import VecMonitor

    from synthenv.vector import make_sb3_vec_env

    run, config = run_folder(out_dir, config, resume)
    check_config(config)
    env_kwargs = dict(config["env"], metrics=False)
    # the envs (and any scsynth they start) come up before anything is written: a failure leaves no folder
    venv = VecMonitor(make_sb3_vec_env(int(config["n_envs"]), **env_kwargs))  # episode returns and lengths in the logs
    try:
        return _train(config, run, venv, resume, progress_bar, log)
    finally:
        venv.close()


def run_folder(out_dir: str | Path, config: dict, resume: bool) -> tuple[Path, dict]:
    """The run folder and the configuration to train with: with ``resume`` the folder's own
    configuration (with the new ``total_timesteps``); without, a folder that holds no run yet. Writes
    nothing."""
    run = Path(out_dir)
    if resume:
        if not (run / "config.json").is_file():
            raise SynthenvError(f"cannot resume: {run} has no config.json")
        config = merge(json.loads((run / "config.json").read_text()), {"total_timesteps": config["total_timesteps"]})
    elif (run / "config.json").exists():
        raise SynthenvError(f"{run} already holds a run; choose a new folder or pass --resume")
    if run.exists() and not run.is_dir():
        raise SynthenvError(f"{run} exists and is not a folder")
    return run, config


def _train(config: dict, run: Path, venv, resume: bool, progress_bar: bool, log) -> Path:
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
    from stable_baselines3.common.vec_env import VecNormalize

    run.mkdir(parents=True, exist_ok=True)
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps(config, indent=2))
    n_envs, seed = int(config["n_envs"]), int(config["seed"])
    venv.seed(seed)
    checkpoint = _latest_checkpoint(run) if resume else None
    if config.get("normalize_obs", True):
        norm = None if checkpoint is None else norm_path(checkpoint)
        if norm is not None and norm.exists():
            venv = VecNormalize.load(str(norm), venv)
        else:
            venv = VecNormalize(venv, norm_obs=True, norm_reward=False, clip_obs=10.0)
    algo = config["algo"]
    if algo == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO as Algo

        policy_name = "MlpLstmPolicy"
    else:
        from stable_baselines3 import PPO as Algo

        policy_name = "MlpPolicy"
    hp = dict(config["ppo"])
    if checkpoint:
        model = Algo.load(checkpoint, env=venv, device="cpu")
        log(f"resuming from {checkpoint} at {model.num_timesteps} timesteps")
    else:
        model = Algo(policy_name, venv, seed=seed, device="cpu", tensorboard_log=str(run / "tb"), verbose=0, **hp)
    targets = eval_targets(config["env"]["synth"], int(config["eval_targets"]))
    eval_csv = run / "eval.csv"
    if not eval_csv.exists():
        eval_csv.write_text("timesteps,seconds,mean_best_distance,median_best_distance\n")
    started = time.monotonic()

    def evaluate_now() -> float:
        stats = venv.obs_rms if isinstance(venv, VecNormalize) else None
        mean, var = (None, None) if stats is None else (stats.mean.astype(np.float32), stats.var.astype(np.float32))
        policy = Policy(model, mean, var, config, algo == "recurrent_ppo")
        d = evaluate_policy(policy, targets, int(config["eval_budget"]))
        with open(eval_csv, "a") as f:
            f.write(f"{model.num_timesteps},{time.monotonic() - started:.1f},{np.mean(d):.4f},{np.median(d):.4f}\n")
        model.logger.record("eval/mean_best_distance", float(np.mean(d)))
        return float(np.mean(d))

    class Periodic(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = model.num_timesteps + int(config["eval_every"])

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += int(config["eval_every"])
                evaluate_now()
            return True

    ckpt_every = max(1, int(config["checkpoint_every"]) // n_envs)

    class Checkpoints(CheckpointCallback):  # with the normalisation statistics beside each one
        def _on_step(self) -> bool:
            if self.n_calls % self.save_freq == 0:
                path = Path(self.save_path) / f"{self.name_prefix}_{self.num_timesteps}_steps.zip"
                self.model.save(path)
                if isinstance(venv, VecNormalize):
                    venv.save(str(norm_path(path)))
            return True

    remaining = int(config["total_timesteps"]) - model.num_timesteps
    if remaining > 0:
        model.learn(
            total_timesteps=remaining,
            callback=CallbackList([Periodic(), Checkpoints(ckpt_every, str(run / "checkpoints"), "model")]),
            progress_bar=progress_bar,
            reset_num_timesteps=not bool(checkpoint),
            tb_log_name="ppo",
        )
    model.save(run / "model.zip")
    if isinstance(venv, VecNormalize):
        venv.save(str(run / "vecnormalize.pkl"))
    final = evaluate_now()
    from synthenv.agents.report import learning_curve_png, write_train_report

    learning_curve_png(eval_csv, run / "learning_curve.png", title=f"PPO on {config['env']['synth']}")
    write_train_report(run, config, final, time.monotonic() - started)
    log(
        f"trained {model.num_timesteps} timesteps in {time.monotonic() - started:.0f} s; held-out mean best "
        f"{config['env'].get('distance', 'distance')} at {config['eval_budget']} renders: {final:.3f}; run folder {run}"
    )
    return run


def _latest_checkpoint(run: Path) -> Path | None:
    final = run / "model.zip"
    ckpts = sorted((run / "checkpoints").glob("model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[1]))
    if ckpts:
        return ckpts[-1]
    return final if final.exists() else None
