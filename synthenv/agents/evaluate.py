"""Compare a trained policy with search baselines at equal render budgets.

For each target every method gets ``budget`` renders and keeps its best candidate: the policy
(its starting sound and ``budget - 1`` steps), a random policy (random actions in the same env:
uniform, or the run's initial action noise when it set one),
random search, a hill climber and CMA-ES; CMA-ES with ``reference_budget`` renders (1,000 by
default) is the reference. Where the synth has an inverse model (:mod:`synthenv.inverse`), its
starts alone (``inverse``: its guesses and nearest bank rows) and every search started from them
(``inverse+cmaes``, ...; the policy: ``inverse+ppo``, episodes starting at the guess) join in, each
start rendered counting as one render.
The best candidate of each method is then measured with every distance (and the parameter MAE where
the target's params are known).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile

from synthenv import distances
from synthenv.agents.policy import Policy, env_kwargs_for_eval, load_policy, policy_search
from synthenv.agents.report import comparison_png, learning_curve_png, markdown_table
from synthenv.agents.search import SearchResult, Tracker, run_search
from synthenv.agents.train import eval_targets
from synthenv.env import SoundMatchEnv
from synthenv.errors import SynthenvError
from synthenv.features import loudness_normalize
from synthenv.inverse import load_model, n_starts, require_model, search_starts
from synthenv.progress import progress_bar


class RandomPolicy:
    """The 'random policy' baseline, acting through the same env: uniform random actions in [-1, 1],
    or with ``std`` Gaussian ones of that spread (clipped): the untrained policy's own noise."""

    def __init__(self, action_dim: int, seed: int, std: float | None = None) -> None:
        self.dim, self.rng, self.std = action_dim, np.random.default_rng(seed), std

    def predict(self, obs, deterministic: bool = True, **_):
        if self.std is None:
            return self.rng.uniform(-1, 1, (1, self.dim)).astype(np.float32), None
        return np.clip(self.std * self.rng.standard_normal((1, self.dim)), -1, 1).astype(np.float32), None


def random_policy_std(config: dict) -> float | None:
    """The spread of the random policy for a run: None (uniform) unless the run set PPO's initial
    action noise (``ppo.policy_kwargs.log_std_init``); then that noise, so that the baseline is the
    policy before it learned."""
    log_std = config.get("ppo", {}).get("policy_kwargs", {}).get("log_std_init")
    return None if log_std is None else float(np.exp(log_std))


def check_compatible(policy: Policy, env: SoundMatchEnv) -> None:
    """The policy's observation and action sizes must be the env's (same synth, pitch mode, features)."""
    obs = policy.model.observation_space.shape
    act = policy.model.action_space.shape
    if obs != env.observation_space.shape or act != env.action_space.shape:
        raise SynthenvError(
            f"the policy was trained on {policy.config['env']} (observations {obs}, actions {act}); this env "
            f"({env.synth.name}, {env.backend.name} backend, {env.features} features) has observations "
            f"{env.observation_space.shape} and actions {env.action_space.shape}"
        )


def measure(env: SoundMatchEnv, x_search: np.ndarray) -> tuple[dict[str, float], np.ndarray | None, np.ndarray | None]:
    """Every distance of one candidate to the current target, its audio and its log-mel."""
    _, an = env.score(x_search[None])
    m = {k: float(v[0]) for k, v in distances.compute_all(env.target_analysis, an).items()}
    t = env.target
    if t.params is not None:
        m["param_mae"] = float(distances.param_mae(env.synth.normalize(t.params), env.full_x(x_search))[0])
    audio = None if an.audio is None else an.audio[0]
    logmel = None if an.audio is None else an.logmel[0]
    return m, audio, logmel


def evaluate(run_dir: str | Path, targets: str = "random", n: int = 16, budget: int = 50, backend: str | None = None,
             reference_budget: int = 1000, out: str | Path | None = None, seed: int = 0, examples: int = 3,
             methods: tuple[str, ...] | None = None, progress: bool = True, log=print,
             inverse_model: str | Path | None = None, target_seed: int | None = None) -> dict:  # fmt: skip
    """Run the comparison; writes ``results.json``, ``results.csv``, ``table.md``, example WAVs and
    PNGs into ``out`` (default ``RUN_DIR/eval_<targets>_<budget>``). Returns the summary.
    ``target_seed`` draws another held-out set of random targets (default: the training's held-out
    seed, :data:`~synthenv.agents.train.EVAL_SEED`).

    ``methods`` default: ppo, random_policy, random, hillclimb, cmaes, and where the synth has an
    inverse model (``inverse_model``, the run's, or the shipped one) inverse@1 (the best-scored guess:
    one render), inverse (the model's starts alone: up to 16 renders), inverse+random,
    inverse+hillclimb, inverse+cmaes, inverse+cmaes_lm (the match default, where the distance has
    residuals) and inverse+ppo (the policy from the guess). ``cmaes_lm`` cold on request."""
    if budget < 1:
        raise SynthenvError(f"--budget must be at least 1 render, got {budget}")
    if n < 1:
        raise SynthenvError(f"--n must be at least 1 target, got {n}")
    policy = load_policy(run_dir) if methods is None or {"ppo", "inverse+ppo"} & set(methods) else None
    config = policy.config if policy else json.loads((Path(run_dir) / "config.json").read_text())
    overrides = {} if backend is None else {"backend": backend}
    if targets != "random":
        overrides["targets"] = targets
    env = SoundMatchEnv(**env_kwargs_for_eval(config, **overrides))
    model = _inverse_for(env, inverse_model, config["env"].get("inverse_model"), log)
    if methods is None:
        methods = ("ppo", "random_policy", "random", "hillclimb", "cmaes")
        if model is not None:
            methods += ("inverse@1", "inverse", "inverse+random", "inverse+hillclimb", "inverse+cmaes")
            if distances.has_residuals(env.distance):
                methods += ("inverse+cmaes_lm",)  # the match default
            if config["env"].get("init") != "inverse":  # a policy trained from the guess starts there anyway
                methods += ("inverse+ppo",)
    check_methods(methods)
    if any(m.partition("@")[0].endswith("cmaes_lm") for m in methods):
        try:
            distances.require_residuals(env.distance)
        except ValueError as exc:
            raise SynthenvError(f"eval method cmaes_lm: {exc}") from None
    if any(m.startswith("inverse") for m in methods) and model is None:
        raise SynthenvError(f"no inverse model fits {env.synth.name!r} at these settings: pass inverse_model")
    if "ppo" not in methods and "inverse+ppo" not in methods:
        policy = None
    env_from_guess = None
    if policy is not None and "inverse+ppo" in methods:
        env_from_guess = SoundMatchEnv(**env_kwargs_for_eval(config, **overrides, init="inverse", inverse_model=model,
                                                             inverse_starts=n_starts(budget, model)))  # fmt: skip
    if policy is not None:
        check_compatible(policy, env)
    if targets == "random":
        ts = {} if target_seed is None else {"seed": int(target_seed)}
        options = [{"target_params": t} for t in eval_targets(config["env"]["synth"], n, **ts)]
    else:
        options = [{"target_index": i} for i in range(min(n, len(env.targets)))]
    out_dir = (
        Path(out) if out else Path(run_dir) / f"eval_{'random' if targets == 'random' else Path(targets).stem}_{budget}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    all_methods = list(methods) + ([f"cmaes@{reference_budget}"] if reference_budget else [])
    rows: list[dict] = []
    results: dict[str, dict[str, list[float]]] = {m: {} for m in all_methods}
    bar = progress_bar(len(options) * len(all_methods), "evaluating", "search", progress)
    dim = len(env.search_index)
    # a cold search starts from the synth's defaults, also when the policy's env starts at the guess
    cold_x0 = env.synth.normalize(env.synth.defaults)[env.search_index]
    try:
        for i, opt in enumerate(options):
            found: dict[str, SearchResult] = {}
            for method in all_methods:
                if method == "ppo":
                    found[method] = policy_search(env, policy, budget, opt, seed=seed + i)
                elif method == "inverse+ppo":
                    found[method] = policy_search(env_from_guess, policy, budget, opt, seed=seed + i)
                    env_from_guess.reset(seed=seed + i, options=opt)
                elif method == "random_policy":
                    rp = Policy(RandomPolicy(dim, seed + i, random_policy_std(config)), None, None, config)
                    found[method] = policy_search(env, rp, budget, opt, seed=seed + i)
                else:
                    env.reset(seed=seed + i, options=opt)
                    name, _, k = method.partition("@")
                    starts = None
                    if name.startswith("inverse"):
                        name = name.partition("+")[2]
                        n_st = (int(k) if k else budget) if not name else n_starts(budget, model)
                        starts = search_starts(model, env.target_analysis.logmel, env.search_index, n_st,
                                               env.read_start())
                    objective = (lambda X: env.score(X)[0])  # noqa: E731
                    with_r = env.score_residuals if distances.has_residuals(env.distance) else None
                    if not name:  # the starts alone (inverse@1: the best-scored guess, one render)
                        t = Tracker(objective, len(starts))
                        t(starts)
                        found[method] = t.result()
                    else:
                        found[method] = run_search(name, objective, dim, int(k or budget), seed + i, cold_x0,
                                                   starts, residuals=with_r)  # fmt: skip
                bar.update(1)
            env.reset(seed=seed + i, options=opt)  # measure every best candidate against this target
            target_desc = env.target.description
            for method, res in found.items():
                metrics, audio, logmel = measure(env, res.x)
                row = {"target": i, "method": method, "renders": res.renders, "distance": res.distance, **metrics,
                       "params": env.full_params(res.x)}  # fmt: skip
                rows.append(row)
                for k, v in metrics.items():
                    results[method].setdefault(k, []).append(v)
                if i < examples and audio is not None:
                    soundfile.write(out_dir / f"target{i}_{method}.wav", audio, env.sample_rate)
                    comparison_png(env.target_analysis.logmel[0], logmel, out_dir / f"target{i}_{method}.png",
                                   title=f"target {i} ({target_desc.get('kind')}), {method}: {env.distance} "
                                   f"{res.distance:.2f}")  # fmt: skip
            if i < examples and env.target.audio is not None:
                soundfile.write(out_dir / f"target{i}.wav", loudness_normalize(env.target.audio)[0], env.sample_rate)
    finally:
        bar.close()
        env.close()
        if env_from_guess is not None:
            env_from_guess.close()
    metric_names = [m for m in ("logmel_l1", "mfcc_l1", "lsd", "multiscale", "server_l1", "param_mae")
                    if m in next(iter(results.values()))]  # fmt: skip
    table = markdown_table(results, metric_names)
    which = targets if target_seed is None or targets != "random" else f"random, target seed {target_seed}"
    header = (f"# {config['env']['synth']}: {len(options)} targets ({which}), {budget} renders per method "
              f"({f'reference: CMA-ES at {reference_budget}' if reference_budget else 'no reference'}), "
              f"backend {env.backend.name}\n\n")  # fmt: skip
    (out_dir / "table.md").write_text(header + table + "\n")
    (out_dir / "results.json").write_text(json.dumps({"rows": rows, "budget": budget, "targets": targets}, indent=2))
    with open(out_dir / "results.csv", "w", newline="") as f:
        fields = ["target", "method", "renders", "distance", *metric_names]
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    eval_csv = Path(run_dir) / "eval.csv"
    if eval_csv.exists():
        base = {m: float(np.mean(results[m]["logmel_l1"])) for m in ("random", "cmaes")
                if "logmel_l1" in results.get(m, {})}  # fmt: skip
        lines = {f"{k} @ {budget}": v for k, v in base.items()}
        title = f"{config['env']['synth']}: policy vs baselines at {budget} renders"
        learning_curve_png(eval_csv, out_dir / "learning_curve.png", baselines=lines, title=title)
    log(header + table)
    log(f"\nwrote {out_dir}")
    summary = {m: {k: float(np.mean(v)) for k, v in r.items()} for m, r in results.items()}
    return {"out": str(out_dir), "summary": summary, "table": table}


EVAL_METHODS = ("ppo", "random_policy", "random", "hillclimb", "cmaes", "cmaes_lm", "inverse", "inverse+random",
                "inverse+hillclimb", "inverse+cmaes", "inverse+cmaes_lm", "inverse+ppo")


def check_methods(methods) -> None:
    """A :class:`SynthenvError` for a method name :func:`evaluate` does not know (``inverse@K``: the
    first K starts alone)."""
    for m in methods:
        name, at, k = m.partition("@")
        if name not in EVAL_METHODS or (at and not (k.isdigit() and int(k) >= 1)) or (at and name.endswith("ppo")):
            raise SynthenvError(f"unknown eval method {m!r}; choose from {', '.join(EVAL_METHODS)} "
                                "(a search or inverse with @N: N renders, e.g. inverse@1, cmaes@1000)")  # fmt: skip


def _inverse_for(env: SoundMatchEnv, path, run_path, log):
    """The inverse model that fits ``env``: ``path`` (it must load and fit), else the run's
    (``run_path``) or the synth's shipped one where it fits, else None."""
    if path is not None:
        if env.features != "audio":
            raise SynthenvError("the inverse model reads the target's log-mel: it needs features='audio'")
        return require_model(path, env.synth.name, env.sample_rate, env.duration)
    if env.features != "audio":
        return None
    try:
        model = load_model(run_path, env.synth.name)
        if model is not None:
            model.check_fits(env.synth, env.sample_rate, env.duration)
        return model
    except SynthenvError as exc:
        log(f"no inverse-model methods: {exc}")
        return None
