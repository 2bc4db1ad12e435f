"""Match a recording: search a synth's params for the sound closest to a target audio file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from synthenv import distances
from synthenv.agents.evaluate import check_compatible, measure
from synthenv.agents.policy import env_kwargs_for_eval, load_policy, policy_search
from synthenv.agents.report import comparison_png
from synthenv.agents.search import METHODS, SearchResult, Tracker, explore, run_search
from synthenv.env import SoundMatchEnv
from synthenv.errors import SynthenvError
from synthenv.features import loudness_normalize
from synthenv.inverse import InverseModel, first_starts, load_model, n_starts, require_model
from synthenv.patch import patch_scd
from synthenv.spec import pitch_to_param
from synthenv.synths import available_synths, get_synth

#: the distance a match minimises unless told otherwise (see synthenv.distances)
MATCH_DISTANCE = "audible"
DEFAULT_BUDGET = 200


INITS = ("cold", "inverse")


def match(target: str | Path, synth: str = "auto", method: str | None = None, budget: int | None = None,
          policy: str | Path | None = None, backend: str = "nrt", out_dir: str | Path = "match",
          seed: int = 0, sample_rate: int = 22050, duration: float = 1.0, log=print,
          progress: Callable[[int, float], None] | None = None, distance: str | None = None,
          init: str | None = None, inverse_model: str | Path | None = None) -> dict:  # fmt: skip
    """Search ``budget`` renders for the closest match to ``target``; write ``match.wav`` (rendered by
    ``backend``, at the target's loudness), ``params.json`` (physical units), ``patch.scd`` (the
    SynthDef and a ``Synth(...)`` line with the matched values, runnable in sclang) and
    ``comparison.png`` into ``out_dir``. Returns the result.

    ``distance`` is what the search minimises (default :data:`MATCH_DISTANCE`; a policy uses the one it
    was trained with). With ``synth="auto"`` the budget is shared: a space-filling probe of every synth
    first (about a quarter of the budget in all), then the rest on the synth whose probe came closest.
    ``progress(renders, best_distance)``, if given, is called after every batch of renders; an
    exception it raises stops the match (e.g. a cancellation).

    Where a match starts (``init``): "inverse" renders the inverse model's starts first
    (:mod:`synthenv.inverse`: its network's guesses and the nearest rows of its bank, interleaved;
    :func:`n_starts` of them, each at its :func:`carriers` pitch) and the method refines from the closest
    (at its pitch); "cold" starts from nothing (the searches explore first). Without ``init`` every
    search (``method`` None, i.e. :func:`default_method`: CMA-ES, then Levenberg-Marquardt; or cmaes,
    cmaes_lm, random, hillclimb) starts from the inverse model's guesses wherever the synth has a model
    that fits (the shipped ones, or ``inverse_model``) and cold where it has none; ``init="cold"`` starts
    cold. A policy (``method="ppo"``) starts as it was trained unless ``init`` says otherwise.
    ``method="inverse"`` is the guesses alone (default budget: one render per synth)."""
    if init is None and inverse_model is not None and method is not None:
        init = "inverse"  # a model given by name is a model to start from
    default = init is None and method not in ("ppo", "inverse")  # shipped models where they fit, else cold
    method = method or default_method(distance)
    if method not in (*METHODS, "ppo", "inverse"):
        raise SynthenvError(f"unknown method {method!r}; choose from ppo, inverse, {', '.join(METHODS)}")
    if init is not None and init not in INITS:
        raise SynthenvError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
    if init == "cold" and (method == "inverse" or inverse_model is not None):
        raise SynthenvError("--method inverse and --inverse-model start from the inverse model's guesses: not with "
                            "--init cold")  # fmt: skip
    target = Path(target)
    if not target.is_file():
        raise SynthenvError(f"target file not found: {target}")
    pol = None
    if method == "ppo":
        if policy is None:
            raise SynthenvError("--method ppo needs --policy RUN_DIR (a run folder from `synthenv train`)")
        pol = load_policy(policy)
        trained = pol.config["env"]["synth"]
        if synth not in ("auto", trained):
            raise SynthenvError(f"the policy in {policy} plays {trained!r}, not {synth!r}")
        synths = [trained]
    else:
        synths = available_synths() if synth == "auto" else [get_synth(synth).name]
        distances.get_distance(distance or MATCH_DISTANCE)  # an unknown name: an error before any render
        if method == "cmaes_lm":
            try:
                distances.require_residuals(distance or MATCH_DISTANCE)
            except ValueError as exc:
                raise SynthenvError(f"--method cmaes_lm: {exc} (or use --method cmaes)") from None
    if budget is None:
        budget = len(synths) if method == "inverse" else DEFAULT_BUDGET
    if budget < 1:
        raise SynthenvError(f"--budget must be at least 1 render, got {budget}")
    models = _inverse_models(synths, method, init, default, inverse_model, sample_rate, duration, log)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = {"renders": 0, "best": float("inf")}  # over every synth tried

    def report(renders: int, d: float) -> None:
        done["renders"] += renders
        done["best"] = min(done["best"], float(d))
        if progress is not None:
            progress(done["renders"], done["best"])

    def make_env(name: str) -> SoundMatchEnv:
        if pol is not None:
            start = {}
            if models.get(name) is not None:
                start = {"init": "inverse", "inverse_model": models[name],
                         "inverse_starts": n_starts(budget, models[name])}  # fmt: skip
            elif init == "cold":  # also for a policy trained from the guess
                start = {"init": "default", "inverse_starts": 1}
            env = SoundMatchEnv(**env_kwargs_for_eval(pol.config, backend=backend, targets=str(target),
                                                     sample_rate=sample_rate, duration=duration, **start))  # fmt: skip
            check_compatible(pol, env)
        else:
            env = SoundMatchEnv(synth=name, backend=backend, targets=str(target), sample_rate=sample_rate,
                                duration=duration, metrics=False, success_threshold=0.0, max_steps=10**6,
                                distance=distance or MATCH_DISTANCE)  # fmt: skip
        env.reset(seed=seed, options={"target_index": 0})
        return env

    def guesses(name: str, n: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The first ``n`` starts of ``name``'s inverse model (searchable columns) and the carrier to render
        each at (:func:`carriers`)."""
        if models.get(name) is None:
            return None
        env = envs[name]
        full = first_starts(models[name], env.target_analysis.logmel, n, env.read_start())
        return full[:, env.search_index], carriers(env, full)

    def objective(env: SoundMatchEnv, freq: np.ndarray | None = None, residuals: bool = False):
        """Render and score candidates (at carriers ``freq``, one per candidate, if given); with
        ``residuals``, ``(distances, the distance's residuals)`` (what ``cmaes_lm`` renders with, and
        ``cmaes``'s Gauss-Newton start)."""

        def score(X):
            f = None if freq is None else freq[: len(np.atleast_2d(X))]
            d, R = env.score_residuals(X, freq=f) if residuals else (env.score(X, freq=f)[0], None)
            report(len(d), d.min())
            return (d, R) if residuals else d

        return score

    def render_starts(name: str, n: int, left: int):
        """``name``'s first ``n`` starts rendered at their carriers, those the probe rendered (its first ones)
        taken from it and at most ``left`` new renders: ``(X, d, carrier)``."""
        known = probe[name][2] if probe is not None else None
        done_before = 0 if known is None else len(known[0])
        X, freq = guesses(name, n)
        freq = None if freq is None else freq[done_before:]
        return _renders(known, objective(envs[name], freq), X[done_before:][:left], freq)

    envs: dict[str, SoundMatchEnv] = {}
    try:
        for name in synths:
            envs[name] = make_env(name)
        name, probe = synths[0], None
        left = budget
        if len(synths) > 1:  # auto: probe every synth, then spend the rest on the closest
            name, probe, used = _pick_synth(envs, budget, seed, objective, guesses, method == "inverse")
            left -= used
            log(f"auto: probed {', '.join(f'{s} {p[1]:.3f}' for s, p in probe.items())} "
                f"({used} renders); {left} renders for {name}")  # fmt: skip
        env = envs[name]
        if pol is not None:
            res = policy_search(env, pol, budget, {"target_index": 0}, seed=seed,
                                on_step=lambda step, info: report(env.start_renders if step == 0 else 1,
                                                                  info["distance"]))  # fmt: skip
        elif method == "inverse":  # as many starts as the budget has renders left
            res = _best(*_at_best_carrier(env, render_starts(name, budget, left)))
        else:
            known, starts = None if probe is None else probe[name][2], None  # the probe's renders of this synth
            if models.get(name) is not None:  # render the starts (each at its carrier), search at the closest one's
                seen = render_starts(name, n_starts(budget, models[name]), left)
                left -= len(seen[0]) - (0 if known is None else len(known[0]))
                known, starts = _at_best_carrier(env, seen), np.empty((0, len(env.search_index)))
            elif known is not None:  # a cold synth's probe: the start of its exploring batch
                known = known[:2]
            x0 = env.search_x if probe is None else None  # the probe's batch began at the defaults
            total = left + (0 if known is None else len(known[0]))
            with_r = objective(env, residuals=True) if distances.has_residuals(env.distance) else None
            res = (run_search(method, objective(env), len(env.search_index), total, seed, x0, starts, known,
                              residuals=with_r)
                   if left else _best(*known))  # fmt: skip
        if probe is not None and (res is None or probe[name][1] <= res.distance):
            res = SearchResult(probe[name][0], probe[name][1], 0)
        pitched = env.full_x(res.x)
        env.reset(seed=seed, options={"target_index": 0})
        if pol is None and "freq" in env.synth.names:  # the carrier the search settled on (a reset sets the
            env.fix_pitch(pitched[env.synth.index("freq")])  # target's pitch again)
        target_rms = float(np.sqrt(np.mean(np.square(env.target.audio))))
        metrics, audio, logmel = measure(env, res.x)
        params = env.full_params(res.x)
        started = "inverse" if models.get(name) is not None or env.init == "inverse" else "cold"
        best = {"synth": name, "method": method, "init": started, "distance": res.distance,
                "distance_name": env.distance,
                "metrics": metrics, "params": params, "renders": done["renders"], "f0": env.target.f0}  # fmt: skip
        log(f"{name:<12} {method} best {env.distance} after {done['renders']} renders: {res.distance:.3f} "
            f"({started} start)")  # fmt: skip
        f0 = env.target.f0
        if f0 and "freq" in params and abs(params["freq"] / pitch_to_param(env.synth, f0) - 1) > 0.01:
            log(f"{name}: freq {params['freq']:.1f} Hz, {params['freq'] / f0:.2f} x the target's pitch ({f0:.1f} Hz)")
        best_audio = _raw_render(env, params)
        best_logmel = (env.target_analysis.logmel[0], logmel)
    finally:
        for env in envs.values():
            env.close()
    soundfile.write(out / "match.wav", loudness_normalize(best_audio, target_rms)[0], sample_rate)
    (out / "params.json").write_text(json.dumps(best["params"], indent=2))
    try:
        (out / "patch.scd").write_text(patch_scd(get_synth(best["synth"]), best["params"], comment=(
            f"synthenv match of {target.name}: {best['synth']} ({best['method']}, {best['renders']} renders), "
            f"{best['distance_name']} {best['distance']:.3f}")))  # fmt: skip
    except SynthenvError as exc:  # a custom synth given only as compiled .scsyndef has no source to paste
        log(f"no patch.scd: {exc}")
    (out / "result.json").write_text(json.dumps({**best, "target": str(target), "backend": backend}, indent=2))
    if best_logmel[1] is not None:
        comparison_png(*best_logmel, out / "comparison.png",
                       title=f"{target.name} vs {best['synth']} ({best['method']}, {best['renders']} renders): "
                       f"{best['distance_name']} {best['distance']:.2f}")  # fmt: skip
    log(f"best: {best['synth']} ({best['method']}), " + ", ".join(f"{k} {v:.3f}" for k, v in best["metrics"].items()))
    log(f"wrote {out / 'match.wav'}, {out / 'params.json'}, {out / 'patch.scd'}, {out / 'comparison.png'}")
    return best


def default_method(distance: str | None = None) -> str:
    """The search a match runs when no ``method`` is given: ``cmaes_lm`` (CMA-ES, then Levenberg-Marquardt
    on the distance's residuals) where ``distance`` (default :data:`MATCH_DISTANCE`) has residuals,
    else ``cmaes``."""
    return "cmaes_lm" if distances.has_residuals(distance or MATCH_DISTANCE) else "cmaes"


def probe_size(budget: int, n_synths: int, only_guesses: bool = False) -> int:
    """Renders ``--synth auto`` spends on each synth before it picks one: about a quarter of ``budget``
    in all (at least 4 each) and at least one render left for the search; with ``only_guesses`` (method
    inverse) the whole budget."""
    if only_guesses:
        return budget // n_synths
    return max(1, min(max(4, budget // (4 * n_synths)), (budget - 1) // n_synths))


def carriers(env: SoundMatchEnv, starts: np.ndarray) -> np.ndarray | None:
    """The carrier (normalised ``freq``) to render each of an inverse model's ``starts`` ``[n, P]`` at:
    the target's pitch, or for a synth whose carrier may sit at a harmonic of the heard pitch
    (:attr:`SynthSpec.carrier_harmonics`, e.g. fm) the harmonic of it in ``freq``'s range (or the pitch
    itself, clamped into the range) nearest the start's own ``freq``; for every synth,
    the start's own ``freq`` where the target has no pitch (pyin found none). None for a synth without
    ``freq``."""
    spec = env.synth
    if "freq" not in spec.names:
        return None
    j = spec.index("freq")
    pitch = env.full_x(env.search_x)
    n = len(starts)
    if env.target.f0 is None:
        return np.clip(starts[:, j], 0.0, 1.0)
    if spec.carrier_harmonics <= 1:
        return np.full(n, pitch[j])
    p = spec.params[j]
    hz = env.target.f0 * np.arange(1, spec.carrier_harmonics + 1)  # of the heard pitch, not of its clamped value
    hz = np.concatenate([spec.denormalize(pitch)[j : j + 1], hz[(hz >= p.low) & (hz <= p.high)]])
    own = spec.denormalize(np.clip(starts, 0.0, 1.0))[:, j]
    rows = np.tile(spec.denormalize(pitch), (n, 1))
    rows[:, j] = hz[np.abs(np.log(own[:, None] / hz[None])).argmin(axis=1)]
    return spec.normalize(rows)[:, j]


def _renders(known, score, X: np.ndarray, freq: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``known`` renders ``(X, d, carrier)`` (or None) and ``X`` rendered with ``score`` at carriers ``freq``
    (``score``'s own), together."""
    X = np.clip(X, 0.0, 1.0)
    d = score(X) if len(X) else np.empty(0)
    freq = None if freq is None else freq[: len(X)]
    if known is None:
        return X, d, freq
    return (np.concatenate([known[0], X]), np.concatenate([known[1], d]),
            None if freq is None else np.concatenate([known[2], freq]))  # fmt: skip


def _at_best_carrier(env: SoundMatchEnv, seen) -> tuple[np.ndarray, np.ndarray]:
    """Fix ``env``'s pitch at the carrier of the closest render in ``seen`` ``(X, d, carrier)``; the
    renders ``(X, d)`` made at that carrier."""
    X, d, freq = seen
    if freq is None:  # a synth without freq
        return X, d
    carrier = float(freq[np.argmin(d)])
    env.fix_pitch(carrier)
    same = np.isclose(freq, carrier)
    return X[same], d[same]


def _best(X: np.ndarray, d: np.ndarray) -> SearchResult:
    i = int(np.argmin(d))
    return SearchResult(X[i], float(d[i]), len(d))


def _pick_synth(envs: dict[str, SoundMatchEnv], budget: int, seed: int, objective, guesses,
                only_guesses: bool = False) -> tuple[str, dict, int]:  # fmt: skip
    """Probe every synth with ``k`` renders each, about a quarter of ``budget`` in all and at least one
    render left for the search: the inverse model's first starts where the synth has a model, else the
    same space-filling batch (its defaults first). With ``only_guesses`` (method inverse) the whole
    budget goes to guesses. Returns the closest synth, ``{synth: (best x, its distance, (X, d) rendered)}``
    and the renders used (with each start's carrier, or None: :func:`carriers`)."""
    n = len(envs)
    if budget < n:
        raise SynthenvError(f"--synth auto needs a budget of at least {n} renders (one per synth), got {budget}")
    k = probe_size(budget, n, only_guesses)
    probe, used = {}, 0
    for name, env in envs.items():
        g = guesses(name, k)
        freq = None if g is None else g[1]
        score = objective(env, freq)
        rendered = []

        def record(X, score=score, rendered=rendered):
            d = score(X)
            rendered.append((np.atleast_2d(X)[: len(d)], d))
            return d

        t = Tracker(record, k if g is None else len(g[0]))
        if g is None:
            explore(t, len(env.search_index), k, seed, env.search_x)
        else:
            t(g[0])
        X = np.concatenate([np.clip(a, 0.0, 1.0) for a, _ in rendered])
        probe[name] = (t.best_x, t.best_d, (X, np.concatenate([d for _, d in rendered]), freq))
        used += len(t.curve)
    return min(probe, key=lambda s: probe[s][1]), probe, used


def _inverse_models(synths: list[str], method: str, init: str | None, default: bool, path, sample_rate: int,
                    duration: float, log) -> dict[str, InverseModel | None]:  # fmt: skip
    """The inverse model of each synth a match starts from (None: starts cold). Asked for (``--method
    inverse``, ``--init inverse``): every synth needs one that fits, else an error. By default: the
    synths whose shipped model fits; the others start cold. A model given by path must load and fit."""
    if init == "cold" or not (default or init == "inverse" or method == "inverse"):
        return {}
    if path is not None and len(synths) > 1:
        raise SynthenvError("--inverse-model is one synth's model: give --synth too")
    models = {}
    for name in synths:
        if default and path is None:
            try:
                models[name] = load_model(path, name)
                if models[name] is not None:
                    models[name].check_fits(name, sample_rate, duration)
            except SynthenvError as exc:
                log(f"{name}: starting cold ({exc})")
                models[name] = None
        else:
            models[name] = require_model(path, name, sample_rate, duration)
    return models


def _raw_render(env: SoundMatchEnv, params: dict[str, float]) -> np.ndarray:
    """The synth's own output (not loudness-normalised) for ``params``."""
    audio = env.backend.render(env.synth, env.synth.from_dicts(params)).audio
    if audio is None:
        raise SynthenvError(f"the {env.backend.name} backend returns no audio: use --backend nrt or numpy")
    return audio


def random_patches_distance(target: str | Path, synth: str, n: int = 200, backend: str = "numpy", seed: int = 0,
                            name: str = MATCH_DISTANCE) -> float:  # fmt: skip
    """The best ``name`` distance among ``n`` random patches of ``synth`` (pitch from the target): what
    ``match`` has to beat."""
    env = SoundMatchEnv(synth=synth, backend=backend, targets=str(target), metrics=False)
    try:
        env.reset(seed=seed, options={"target_index": 0})
        xs = np.random.default_rng(seed).random((n, len(env.search_index)))
        _, an = env.score(xs)
        return float(distances.compute(name, env.target_analysis, an).min())
    finally:
        env.close()
