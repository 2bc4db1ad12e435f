"""PPO on Ray RLlib (new API stack): the same run folder as the stable-baselines3 engine, sampled by
env runners that each step synthenv's batched vector env.

Needs the rllib extra (``pip install 'synthenv[rllib]'``); ``import synthenv`` never imports ray. A run
folder holds::

    RUN/config.json        the full configuration ("engine": "rllib", runners, envs per runner, ...)
    RUN/model/             the final RLlib algorithm checkpoint, with RUN/model/obs_filter.npz
    RUN/checkpoints/       periodic checkpoints model_<steps>_steps/ (each with its obs_filter.npz)
    RUN/tb/                TensorBoard logs            RUN/eval.csv           held-out evaluations
    RUN/learning_curve.png                            RUN/report.json, report.md

``obs_filter.npz`` is the observation normalisation (RLlib's ``MeanStdFilter``: ``clip((obs - mean) /
(std + 1e-8), -clip, clip)``) as plain arrays. Inference (``load_rllib_policy``) loads the policy's
RLModule from the checkpoint and takes the mean of its Gaussian, clipped to [-1, 1]: no Ray cluster
is started to evaluate, match or play.

Every env runner is a process that owns its scsynth work: NRT renders are ``scsynth -N`` processes
per call with a timeout, and a live server dies with the process that booted it
(``PR_SET_PDEATHSIG``), so stopping or killing a runner stops its servers. The driver stops the
runners (``Algorithm.stop``) and the Ray instance it started (``ray.shutdown``) on normal exit,
on an error and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from synthenv.agents.policy import Policy
from synthenv.errors import ConfigError, SynthenvError
from synthenv.progress import progress_bar as make_progress_bar

RLLIB_HINT = "the rllib engine needs Ray RLlib: pip install 'synthenv[rllib]' (or ./setup.sh)"

#: stable-baselines3 PPO hyperparameter names (the ``ppo`` block of a config) -> RLlib's ``training()`` names
SB3_TO_RLLIB = {
    "learning_rate": "lr",
    "batch_size": "minibatch_size",
    "n_epochs": "num_epochs",
    "gamma": "gamma",
    "gae_lambda": "lambda_",
    "clip_range": "clip_param",
    "ent_coef": "entropy_coeff",
    "vf_coef": "vf_loss_coeff",
    "max_grad_norm": "grad_clip",
}
#: handled separately: rollout length per env (-> the train batch) and the network
SB3_OTHER = {"n_steps", "policy_kwargs"}
#: stable-baselines3's PPO defaults where RLlib's differ (so that equal configs mean equal algorithms)
SB3_DEFAULTS = {"vf_loss_coeff": 0.5, "grad_clip": 0.5, "use_kl_loss": False, "vf_clip_param": float("inf")}

FILTER_FILE = "obs_filter.npz"
MODULE_PATH = ("learner_group", "learner", "rl_module", "default_policy")


def import_ray():
    """``ray`` with RLlib, or a one-line :class:`SynthenvError` saying how to install it."""
    try:
        import ray
        import ray.rllib  # noqa: F401
    except ImportError:
        raise SynthenvError(RLLIB_HINT) from None
    return ray


def runner_layout(config: dict) -> tuple[int, int]:
    """``(num_env_runners, envs_per_runner)`` of a config. 0 runners samples in the driver."""
    runners = int(config.get("num_env_runners", 1))
    per = config.get("envs_per_runner") or math.ceil(int(config["n_envs"]) / max(1, runners))
    return runners, int(per)


def check_rllib_config(cfg: dict) -> None:
    """Check the RLlib-only parts of a run configuration (the rest is checked by ``check_config``)."""
    if cfg.get("algo") != "ppo":
        raise ConfigError(f"the rllib engine trains PPO only (algo 'ppo'), got {cfg.get('algo')!r}: drop --recurrent")
    runners = cfg.get("num_env_runners")
    if not (isinstance(runners, int) and not isinstance(runners, bool) and runners >= 0):
        raise ConfigError(f"num_env_runners must be an integer >= 0 (0: sample in the driver), got {runners!r}")
    per = cfg.get("envs_per_runner")
    if per is not None and not (isinstance(per, int) and not isinstance(per, bool) and per >= 1):
        raise ConfigError(f"envs_per_runner must be a positive integer, got {per!r}")
    cpus = cfg.get("cpus_per_env_runner", 1)
    if not (isinstance(cpus, int | float) and not isinstance(cpus, bool) and cpus >= 0):
        raise ConfigError(f"cpus_per_env_runner must be a number >= 0, got {cpus!r}")
    unknown = sorted(set(cfg.get("ppo") or {}) - set(SB3_TO_RLLIB) - SB3_OTHER)
    if unknown:
        raise ConfigError(f"the rllib engine does not map the PPO hyperparameter(s) {', '.join(unknown)}; it takes "
                          f"{', '.join(sorted(set(SB3_TO_RLLIB) | SB3_OTHER))} (and RLlib's own training() "
                          "arguments as rllib.NAME=VALUE)")  # fmt: skip
    pk = (cfg.get("ppo") or {}).get("policy_kwargs") or {}
    if set(pk) - {"net_arch"} or not all(isinstance(n, int) for n in pk.get("net_arch", [])):
        raise ConfigError(f"the rllib engine takes policy_kwargs={{'net_arch': [sizes...]}} only, got {pk!r}")
    if not isinstance(cfg.get("rllib") or {}, dict):
        raise ConfigError(f"rllib must map RLlib training() arguments to values, got {cfg.get('rllib')!r}")


def rllib_training_kwargs(config: dict) -> dict:
    """RLlib ``PPOConfig.training()`` arguments for a synthenv config: SB3 names translated, SB3's
    defaults where RLlib's differ, one rollout of ``n_steps`` per env per train batch, then ``rllib``."""
    ppo = dict(config.get("ppo") or {})
    runners, per = runner_layout(config)
    kw = dict(SB3_DEFAULTS)
    kw.update({SB3_TO_RLLIB[k]: v for k, v in ppo.items() if k in SB3_TO_RLLIB})
    kw["train_batch_size_per_learner"] = int(ppo.get("n_steps", 2048)) * max(1, runners) * per
    kw.update(config.get("rllib") or {})
    return kw


def train_rllib(config: dict, out_dir: str | Path, resume: bool = False, progress_bar: bool = True,
                address: str | None = None, log=print) -> Path:  # fmt: skip
    """Train per ``config`` with RLlib into ``out_dir`` (continue from the last checkpoint with ``resume``).
    ``address``: a running Ray cluster (``"auto"`` for the one ``ray start`` made on this machine, or
    ``host:port``); default ``$RAY_ADDRESS``, else a private local Ray instance that is stopped at the end."""
    from synthenv.agents.train import check_config, run_folder

    run, config = run_folder(out_dir, config, resume)
    config = copy.deepcopy(config)
    config["engine"] = "rllib"
    config.setdefault("num_env_runners", 1)
    runners, per = runner_layout(config)
    config["envs_per_runner"], config["n_envs"] = per, max(1, runners) * per
    check_config(config)
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    cpus = float(config.get("cpus_per_env_runner", 1))
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:  # a private instance: enough logical CPUs for the driver and every runner
            need = 1 + math.ceil(runners * cpus)
            ray.init(num_cpus=max(os.cpu_count() or 1, need), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)  # fmt: skip
    algo, finished = None, False
    on_term = _sigterm_raises()
    try:
        have, need = ray.cluster_resources().get("CPU", 0.0), 1 + runners * cpus
        if have < need:
            raise SynthenvError(f"the Ray cluster has {have:g} CPUs; the driver and {runners} env runners at "
                                f"{cpus:g} CPU each need {need:g}: start it with more (ray start --num-cpus N), use "
                                "fewer runners or --set cpus_per_env_runner=0.5")  # fmt: skip
        algo = build_algorithm(config)  # the runners (and any scsynth they start) come up before anything is written
        out = _train(config, run, algo, resume, progress_bar, log)
        finished = True
        return out
    finally:
        if algo is not None:
            if finished:
                algo.stop()  # each runner closes its env (and stops any server it started)
            else:  # Ctrl-C, SIGTERM or an error: do not wait for the runners' sampling to end
                _kill_runners(ray, algo)
        if started:
            ray.shutdown()
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _sigterm_raises():
    """Let SIGTERM interrupt training like Ctrl-C, so that the runners and Ray are stopped; returns the
    previous handler (None off the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _kill_runners(ray, algo) -> None:
    """Kill the env runner actors at once (their scsynth processes end with them: NRT renders see their
    pipes close and finish, live servers get PR_SET_PDEATHSIG)."""
    try:
        actors = list(algo.env_runner_group._worker_manager.actors().values())
    except Exception:  # RLlib's internals moved: fall back to the orderly stop
        algo.stop()
        return
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)


def build_algorithm(config: dict):
    """An RLlib PPO ``Algorithm`` whose env runners step :class:`NextStepSoundMatchVectorEnv`."""
    import_ray()
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.tune.registry import register_env

    from synthenv.agents.rllib_env import RLLIB_ENV_NAME, make_env

    register_env(RLLIB_ENV_NAME, make_env)
    logging.getLogger("ray.rllib").setLevel(logging.ERROR)  # "You are running PPO on the new API stack!" etc.
    runners, per = runner_layout(config)
    env_config = dict(config["env"], metrics=False)
    normalize = bool(config.get("normalize_obs", True))
    net = ((config.get("ppo") or {}).get("policy_kwargs") or {}).get("net_arch", [64, 64])
    # stable-baselines3's MlpPolicy: tanh, separate policy and value networks, a state-independent log std
    model = DefaultModelConfig(
        fcnet_hiddens=list(net), fcnet_activation="tanh", free_log_std=True, vf_share_layers=False
    )
    ppo = (
        PPOConfig()
        .environment(RLLIB_ENV_NAME, env_config=env_config)
        .framework("torch")
        .env_runners(
            num_env_runners=runners,
            num_envs_per_env_runner=per,
            gym_env_vectorize_mode="vector_entry_point",  # our creator returns the batched vector env
            num_cpus_per_env_runner=float(config.get("cpus_per_env_runner", 1)),
            env_to_module_connector=_mean_std_filter if normalize else None,
        )
        .training(**rllib_training_kwargs(config))
        .rl_module(model_config=model)
        .debugging(seed=int(config["seed"]), log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=100)
    )
    return ppo.build_algo()


def _mean_std_filter(env, spaces, device):
    from ray.rllib.connectors.env_to_module import MeanStdFilter

    return MeanStdFilter(clip_by_value=10.0)


def obs_filter(algo) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The merged observation statistics ``(mean, std, clip)`` of the env runners' ``MeanStdFilter``
    (None without one)."""
    from ray.rllib.utils.filter import RunningStat

    # RLlib merges the runners' statistics after every sampling round and broadcasts them to every runner,
    # the driver's local one included
    state = algo.env_runner_group.local_env_runner._env_to_module.get_state().get("MeanStdFilter")
    if not state:
        return None
    agent = next(iter(state.values()))
    stat = RunningStat.from_state(agent["running_stats"][0])
    return stat.mean.astype(np.float32), stat.std.astype(np.float32), float(agent["clip_by_value"] or 0.0)


class RLlibModel:
    """An RLlib RLModule as a policy with the ``predict`` of stable-baselines3: the mean of the action
    distribution (on observations normalised as in training), or with ``deterministic=False`` a sample
    of it (drawn with torch's generator), clipped to [-1, 1]."""

    def __init__(self, module, obs_stats: tuple[np.ndarray, np.ndarray, float] | None = None) -> None:
        self.module, self.obs_stats = module, obs_stats
        self.observation_space, self.action_space = module.observation_space, module.action_space

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        if self.obs_stats is None:
            return obs.astype(np.float32)
        mean, std, clip = self.obs_stats
        x = (obs - mean) / (std + 1e-8)
        return (np.clip(x, -clip, clip) if clip else x).astype(np.float32)

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        import torch

        o = self.normalize(np.asarray(obs, dtype=np.float32)).reshape(-1, *self.observation_space.shape)
        n = int(np.prod(self.action_space.shape))
        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.from_numpy(o)})
            inputs = out["action_dist_inputs"]  # a diagonal Gaussian: [mean, log_std]
            action = inputs[:, :n]
            if not deterministic:
                action = action + torch.exp(inputs[:, n : 2 * n]) * torch.randn_like(action)
        return np.clip(action.cpu().numpy(), -1.0, 1.0).astype(np.float32), state


def _train(config: dict, run: Path, algo, resume: bool, progress_bar: bool, log) -> Path:
    from synthenv.agents.train import eval_targets, evaluate_policy

    run.mkdir(parents=True, exist_ok=True)
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps(config, indent=2))
    steps = 0
    if resume:
        ckpt = _latest_checkpoint(run)
        if ckpt is not None:
            algo.restore_from_path(str(ckpt.resolve()))
            steps = _steps_of(ckpt)
            log(f"resuming from {ckpt} at {steps} timesteps")
    targets = eval_targets(config["env"]["synth"], int(config["eval_targets"]))
    eval_csv = run / "eval.csv"
    if not eval_csv.exists():
        eval_csv.write_text("timesteps,seconds,mean_best_distance,median_best_distance\n")
    tb = _tensorboard(run / "tb")
    started = time.monotonic()

    def evaluate_now() -> float:
        model = RLlibModel(algo.get_module(), obs_filter(algo))
        d = evaluate_policy(Policy(model, None, None, config), targets, int(config["eval_budget"]))
        with open(eval_csv, "a") as f:
            f.write(f"{steps},{time.monotonic() - started:.1f},{np.mean(d):.4f},{np.median(d):.4f}\n")
        if tb is not None:
            tb.add_scalar("eval/mean_best_distance", float(np.mean(d)), steps)
        return float(np.mean(d))

    def save(path: Path) -> None:
        algo.save_to_path(str(path.resolve()))
        stats = obs_filter(algo)
        if stats is not None:
            np.savez(path / FILTER_FILE, mean=stats[0], std=stats[1], clip=np.float32(stats[2]))

    total, every = int(config["total_timesteps"]), int(config["eval_every"])
    ckpt_every = int(config["checkpoint_every"])
    next_eval, next_ckpt = (steps // every + 1) * every, (steps // ckpt_every + 1) * ckpt_every
    bar = make_progress_bar(total, "training", "step", progress_bar, steps)
    try:
        while steps < total:
            result = algo.train()
            new = int(result.get("num_env_steps_sampled_lifetime", steps))
            bar.update(min(new, total) - min(steps, total))
            steps = new
            if tb is not None:
                _log_result(tb, result, steps)
            if steps >= next_ckpt:
                next_ckpt += ckpt_every * max(1, (steps - next_ckpt) // ckpt_every + 1)
                save(run / "checkpoints" / f"model_{steps}_steps")
            if steps >= next_eval and steps < total:
                next_eval += every * max(1, (steps - next_eval) // every + 1)
                evaluate_now()
    finally:
        bar.close()
    save(run / "model")
    final = evaluate_now()
    if tb is not None:
        tb.close()
    from synthenv.agents.report import learning_curve_png, write_train_report

    learning_curve_png(eval_csv, run / "learning_curve.png", title=f"PPO (RLlib) on {config['env']['synth']}")
    write_train_report(run, config, final, time.monotonic() - started)
    runners, per = runner_layout(config)
    log(
        f"trained {steps} timesteps in {time.monotonic() - started:.0f} s on {runners} env runner(s) x {per} envs; "
        f"held-out mean best {config['env'].get('distance', 'distance')} at {config['eval_budget']} renders: "
        f"{final:.3f}; run folder {run}"
    )
    return run


def _log_result(tb, result: dict, steps: int) -> None:
    runners = result.get("env_runners", {})
    for key in ("episode_return_mean", "episode_len_mean", "num_env_steps_sampled_lifetime_throughput"):
        value = runners.get(key)
        if isinstance(value, dict):
            value = value.get("throughput_since_last_reduce")
        if value is not None and np.isfinite(value):
            tb.add_scalar(f"rollout/{key}", float(value), steps)
    learner = result.get("learners", {}).get("default_policy", {})
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "vf_explained_var"):
        if key in learner and np.isfinite(learner[key]):
            tb.add_scalar(f"train/{key}", float(learner[key]), steps)
    if "time_this_iter_s" in result:
        tb.add_scalar("time/iteration_s", float(result["time_this_iter_s"]), steps)


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard comes with the train extra
        return None
    return SummaryWriter(str(path / "rllib_ppo"))


def _steps_of(ckpt: Path) -> int:
    if ckpt.name.startswith("model_") and ckpt.name.endswith("_steps"):
        return int(ckpt.name.split("_")[1])
    report = ckpt.parent / "report.json"
    return int(json.loads(report.read_text())["config"]["total_timesteps"]) if report.is_file() else 0


def _latest_checkpoint(run: Path) -> Path | None:
    ckpts = sorted((run / "checkpoints").glob("model_*_steps"), key=_steps_of)
    if ckpts:
        return ckpts[-1]
    return run / "model" if (run / "model").is_dir() else None


def is_rllib_run(config: dict) -> bool:
    return config.get("engine") == "rllib"


def load_rllib_policy(run: Path, config: dict, checkpoint: str | Path | None = None) -> Policy:
    """The deterministic policy of an RLlib run folder (``RUN/model`` or a checkpoint folder): its
    RLModule on CPU and its observation filter. Imports ray's RLlib, starts no Ray processes."""
    import_ray()
    from ray.rllib.core.rl_module.rl_module import RLModule

    ckpt = Path(checkpoint) if checkpoint else run / "model"
    module_dir = ckpt.joinpath(*MODULE_PATH)
    if not module_dir.is_dir():
        raise SynthenvError(
            f"no RLlib policy at {module_dir}: the run has not finished; pass a checkpoint from {run}/checkpoints"
        )
    logging.getLogger("ray.rllib").setLevel(logging.ERROR)  # RLlib's own deprecation notices are not the user's
    module = RLModule.from_checkpoint(str(module_dir.resolve()))
    module.eval()
    stats = None
    if (ckpt / FILTER_FILE).is_file():
        with np.load(ckpt / FILTER_FILE) as f:
            stats = (f["mean"].astype(np.float32), f["std"].astype(np.float32), float(f["clip"]))
    return Policy(RLlibModel(module, stats), None, None, config)
