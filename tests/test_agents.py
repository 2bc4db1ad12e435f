"""Training, evaluation, matching and the search baselines, on small budgets."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from conftest import needs_scsynth, pluck

pytest.importorskip("stable_baselines3", reason="training extra not installed (pip install 'synthenv[train]')")

from synthenv.agents.search import run_search  # noqa: E402
from synthenv.errors import SynthenvError  # noqa: E402

TINY = ["n_envs=8", "ppo.n_steps=32", "ppo.batch_size=64", "ppo.n_epochs=2", "eval_targets=2", "eval_budget=5",
        "eval_every=256", "checkpoint_every=256", "ppo.policy_kwargs.net_arch=[32,32]"]  # fmt: skip


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "synthenv.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def quadratic(target):
    return lambda X: np.sum((np.atleast_2d(X) - target) ** 2, axis=1)


@pytest.mark.parametrize("method", ["random", "hillclimb", "cmaes"])
def test_search_respects_the_budget_and_improves(method):
    target = np.array([0.2, 0.7, 0.4, 0.9])
    calls = []
    obj = quadratic(target)
    res = run_search(method, lambda X: calls.append(len(X)) or obj(X), 4, 60, seed=1)
    assert sum(calls) == 60 == res.renders == len(res.curve)
    assert np.all(np.diff(res.curve) <= 0) and res.distance == res.curve[-1]
    assert res.distance == pytest.approx(obj(res.x)[0])
    assert res.distance < obj(np.full(4, 0.5))[0]


def test_cmaes_beats_random_search_on_a_smooth_objective():
    obj = quadratic(np.array([0.1, 0.8, 0.3, 0.6, 0.9]))
    cma = np.mean([run_search("cmaes", obj, 5, 200, seed=s).distance for s in range(5)])
    rnd = np.mean([run_search("random", obj, 5, 200, seed=s).distance for s in range(5)])
    assert cma < rnd / 5


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "fm"
    r = cli("train", "--synth", "fm", "--backend", "numpy", "--timesteps", "512", "-o", str(run), "--no-progress",
            *[a for s in TINY for a in ("--set", s)])  # fmt: skip
    assert r.returncode == 0, r.stderr
    return run


def test_training_writes_a_reusable_run_folder(tiny_run):
    for name in ("config.json", "model.zip", "vecnormalize.pkl", "eval.csv", "report.md", "report.json",
                 "learning_curve.png"):  # fmt: skip
        assert (tiny_run / name).is_file(), name
    assert list((tiny_run / "checkpoints").glob("model_*_steps.zip"))
    assert list((tiny_run / "tb").rglob("events.out.tfevents.*"))
    evals = (tiny_run / "eval.csv").read_text().strip().splitlines()
    assert len(evals) >= 3  # header + periodic + final
    from synthenv.agents.policy import load_policy

    policy = load_policy(tiny_run)
    assert policy.config["env"]["synth"] == "fm" and policy.obs_mean is not None


def test_resume_continues_from_the_last_checkpoint(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(tiny_run, run)
    r = cli("train", "--timesteps", "1024", "--resume", "-o", str(run), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout
    assert json.loads((run / "report.json").read_text())["evaluations"][-1]["timesteps"] == "1024"


def test_recurrent_ppo_trains(tmp_path):
    r = cli("train", "--synth", "fm", "--recurrent", "--timesteps", "256", "-o", str(tmp_path / "rec"),
            "--no-progress", *[a for s in TINY for a in ("--set", s)])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "rec" / "config.json").read_text())["algo"] == "recurrent_ppo"


def test_eval_compares_every_method_at_equal_budgets(tiny_run, tmp_path):
    out = tmp_path / "eval"
    r = cli("eval", str(tiny_run), "--targets", "random", "--n", "2", "--budget", "6", "--reference-budget", "20",
            "--examples", "1", "--no-progress", "-o", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    methods = {row["method"] for row in rows}
    inverse = {"inverse@1", "inverse", "inverse+random", "inverse+hillclimb", "inverse+cmaes", "inverse+cmaes_lm",
               "inverse+ppo"}  # fmt: skip
    assert methods == {"ppo", "random_policy", "random", "hillclimb", "cmaes", "cmaes@20", *inverse}
    for row in rows:  # inverse@1: the model's guess alone, one render
        assert row["renders"] == {"cmaes@20": 20, "inverse@1": 1}.get(row["method"], 6)
        assert {"logmel_l1", "mfcc_l1", "lsd", "multiscale", "param_mae"} <= set(row)
        assert abs(row["logmel_l1"] - row["distance"]) < 1e-3  # the reported best is re-measured exactly
    table = (out / "table.md").read_text()
    assert "95% CI" in table and "cmaes@20" in table
    for name in ("results.csv", "target0.wav", "target0_ppo.wav", "target0_cmaes.png", "learning_curve.png"):
        assert (out / name).is_file(), name


def test_a_policy_trained_with_step_from_best_samples_its_moves_reproducibly(tmp_path):
    """A policy trained with step_from="best" proposes moves from the best candidate so far: it samples
    its actions (its mean would repeat a rejected move), from a private generator seeded per search,
    so a search is reproducible and torch's global generator is untouched. Export refuses it."""
    import torch

    from synthenv.agents.export import export_policy
    from synthenv.agents.policy import env_kwargs_for_eval, load_policy, policy_search
    from synthenv.agents.train import eval_targets
    from synthenv.env import SoundMatchEnv

    run = tmp_path / "elitist"
    r = cli("train", "--synth", "fm", "--timesteps", "256", "-o", str(run), "--no-progress",
            *[a for s in [*TINY, "env.step_from=best", "env.action_scale=0.05", "ppo.policy_kwargs.log_std_init=-1.5"]
              for a in ("--set", s)])  # fmt: skip
    assert r.returncode == 0, r.stderr
    policy = load_policy(run)
    assert not policy.deterministic and load_policy_deterministic_default()
    from synthenv.agents.evaluate import random_policy_std  # the random policy: the untrained policy's noise

    assert random_policy_std(policy.config) == pytest.approx(np.exp(-1.5)) and random_policy_std({}) is None
    env = SoundMatchEnv(**env_kwargs_for_eval(policy.config))
    try:
        torch.manual_seed(123)
        state = torch.random.get_rng_state()
        target = {"target_params": eval_targets("fm", 1)[0]}
        runs = [policy_search(env, policy, 12, target, seed=s) for s in (4, 4, 5)]
        assert runs[0].curve == runs[1].curve and np.array_equal(runs[0].x, runs[1].x)
        assert all(np.all(np.diff(res.curve) <= 0) for res in runs)
        obs, _ = env.reset(seed=0, options=target)
        actions = []
        for s in (4, 4, 5):
            policy.seed(s)
            actions.append(policy.act(obs)[0])
        assert np.array_equal(actions[0], actions[1]) and not np.array_equal(actions[0], actions[2])
        assert torch.equal(torch.random.get_rng_state(), state)
    finally:
        env.close()
    with pytest.raises(SynthenvError, match="step_from='best'"):
        export_policy(run, "onnx", tmp_path / "p.onnx")
    out = tmp_path / "eval"
    r = cli("eval", str(run), "--n", "1", "--budget", "6", "--methods", "ppo,random_policy", "--reference-budget", "0",
            "--examples", "0", "--no-progress", "-o", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {row["method"] for row in rows} == {"ppo", "random_policy"}


def load_policy_deterministic_default() -> bool:
    """A policy of the default env (step_from="current") acts with its mean."""
    from synthenv.agents.policy import Policy

    return Policy(None, None, None, {"env": {"synth": "fm"}}).deterministic


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A stereo 44.1 kHz plucked-string WAV (not made by any synthenv synth)."""
    path = tmp_path_factory.mktemp("rec") / "pluck.wav"
    audio = pluck(262.0, 44100, 1.0)
    soundfile.write(path, np.stack([audio, audio], 1), 44100)
    return path


@pytest.mark.parametrize("method", ["cmaes", "random", "hillclimb"])
def test_match_a_recording(recording, tmp_path, method):
    out = tmp_path / method
    r = cli("match", str(recording), "--synth", "additive", "--method", method, "--budget", "24", "--backend",
            "numpy", "-o", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    for name in ("match.wav", "params.json", "comparison.png"):
        assert (out / name).is_file()
    audio, sr = soundfile.read(out / "match.wav")
    assert sr == 22050 and audio.shape == (22050,) and np.abs(audio).max() > 0
    params = json.loads((out / "params.json").read_text())
    assert params["freq"] == pytest.approx(262.0, rel=0.03)  # pitch from the recording
    assert "logmel_l1" in r.stdout


def test_match_with_a_policy_and_auto_synth(recording, tiny_run, tmp_path):
    r = cli("match", str(recording), "--method", "ppo", "--policy", str(tiny_run), "--budget", "8", "--backend",
            "numpy", "-o", str(tmp_path / "ppo"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "ppo" / "result.json").read_text())["synth"] == "fm"
    r = cli("match", str(recording), "--synth", "auto", "--budget", "8", "--backend", "numpy", "-o",
            str(tmp_path / "auto"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    for synth in ("fm", "subtractive", "additive"):
        assert synth in r.stdout


@needs_scsynth
def test_hear_a_trained_agent_match_a_recording_live(recording, tiny_run):
    """`synthenv play --policy`: the target, each candidate the agent tries, then target and best, all
    started on a live scsynth (each note waits for scsynth's /n_go; a dummy JACK server here)."""
    r = cli("play", "--policy", str(tiny_run), "--target", str(recording), "--steps", "3", "--jack", "dummy",
            timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    steps = [line for line in r.stdout.splitlines() if line.startswith("step")]
    assert len(steps) == 3 and all("logmel_l1" in line for line in steps), r.stdout
    assert "the best candidate" in r.stdout and "pitch 26" in r.stdout  # 262 Hz from pyin


@pytest.mark.parametrize(
    "args, message",
    [
        (["match", "nope.wav", "--synth", "fm"], "target file not found"),
        (["match", "{rec}", "--synth", "moog"], "unknown synth 'moog'"),
        (["match", "{rec}", "--synth", "fm", "--budget", "0"], "budget must be at least 1"),
        (["match", "{rec}", "--method", "ppo"], "needs --policy"),
        (["match", "{rec}", "--method", "gradient"], "unknown method"),
        (["train", "--synth", "moog", "-o", "{tmp}/x"], "unknown synth 'moog'"),
        (["train", "--timesteps", "0", "-o", "{tmp}/x"], "total_timesteps must be a positive integer"),
        (["train", "--set", "ppo.learning_rate", "-o", "{tmp}/x"], "key=value"),
        (["eval", "{tmp}"], "not a synthenv run folder"),
        (["eval", "{run}", "--budget", "0"], "budget must be at least 1"),
        (["play", "--policy", "{run}"], "--policy needs --target"),
        (["play", "--target", "{rec}"], "give --synth"),
        (["play", "--policy", "{run}", "--target", "{rec}", "--steps", "0"], "steps must be at least 1"),
    ],
)
def test_bad_arguments_are_clear_errors(args, message, recording, tiny_run, tmp_path):
    args = [a.format(rec=recording, tmp=tmp_path, run=tiny_run) for a in args]
    r = cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_cold_cmaes_match_against_random_patches_over_seeds(recording, tmp_path):
    """A cold CMA-ES at 200 renders against 200 random patches on its own objective (audible), the mean of
    four seeds of each: one cold search is a draw (fm on this pluck, seeds 0-3: 0.73, 1.08, 1.20 and 0.91
    of the random patches of seed 0). Measured, mean CMA-ES / mean random over these 4 seeds: fm 0.96,
    subtractive 0.78, additive 0.58 (over 8 seeds: 1.04, 0.76, 0.59). fm's landscape is a few narrow
    basins (the harmonic ratios), where a cold CMA-ES at 200 renders is no better than random sampling:
    issue 12's "never lose to random" is not met there, and fm's bound (1.15) only guards against a
    worse search. A match starts from the inverse model's guesses by default (README, "Amortised
    matching")."""
    from synthenv.agents.match import match

    for synth, bound in (("fm", 1.15), ("subtractive", 0.9), ("additive", 0.8)):
        mean = {}
        for method in ("cmaes", "random"):
            ds = []
            for seed in range(4):
                best = match(recording, synth=synth, method=method, budget=200, backend="numpy", init="cold",
                             seed=seed, out_dir=tmp_path / f"{synth}{method}{seed}", log=lambda *a: None)  # fmt: skip
                assert best["distance_name"] == "audible" and best["renders"] == 200
                ds.append(best["distance"])
            mean[method] = np.mean(ds)
        assert mean["cmaes"] < bound * mean["random"], (synth, mean)


@pytest.mark.slow
def test_cmaes_matches_sampled_real_instruments(tmp_path):
    """Notes of sampled real instruments (FluidR3 GM, see synthenv/data/instruments/README.md): CMA-ES at
    200 renders against the best of 200 random patches on the match's own objective (audible), per
    synth, from a cold start. Measured with audible's 4096-point view: mean ratio fm 0.91, subtractive
    0.90, additive 0.80 (0.70 before additive had 24 free partial levels, sustain and noise: 43 searchable
    parameters now instead of 13, which 200 cold renders cover thinly); worst note 0.99, 1.09, 0.92.
    subtractive loses to the random patches on the trumpet (1.09; with seeds 1 and 2, 0.97 and 1.13).
    additive with vibrato (41 parameters): mean 0.80, worst the flute (0.92; seeds 1, 2, 3: 0.89, 0.96, 0.83;
    1.16, 1.05, 0.95, 0.99 the release before, without vibrato). With the chorus (44 parameters, 43
    searched) a cold search is farther: mean 0.844, 0.786, 0.809, 0.761 at seeds 0-3 (the bound was 0.85),
    worst the piano 0.997, 0.887, 0.949, 0.939. The README's cold table counts such losses; the default
    start (the patches read from the note, the inverse models') is not cold and closer than random on every
    note. With the views of before: mean 0.90, 0.85, 0.71, worst 1.035 (fm on the trumpet), 0.99, 0.95."""
    from synthenv.agents.match import match, random_patches_distance
    from synthenv.samples import instrument_notes

    notes = list(instrument_notes().values())
    assert len(notes) == 5
    for synth, worst_bound, mean_bound in (("fm", 1.05, 0.95), ("subtractive", 1.15, 0.95), ("additive", 1.02, 0.9)):
        ratios = []
        for note in notes:
            best = match(note, synth=synth, method="cmaes", budget=200, backend="numpy", init="cold",
                         out_dir=tmp_path / f"{note.stem}_{synth}", log=lambda *a: None)  # fmt: skip
            ratios.append(best["distance"] / random_patches_distance(note, synth, 200, name=best["distance_name"]))
        assert max(ratios) < worst_bound and np.mean(ratios) < mean_bound, (synth, np.round(ratios, 3))


def test_report_plots_leave_the_matplotlib_backend_alone(tmp_path):
    """A notebook's inline backend must survive a match or an eval (plt.show() kept working after)."""
    import matplotlib

    from synthenv.agents.report import comparison_png, learning_curve_png

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        logmel = np.random.default_rng(0).uniform(-80, -20, (87, 64)).astype(np.float32)
        comparison_png(logmel, logmel - 3, tmp_path / "c.png", title="t")
        (tmp_path / "eval.csv").write_text("timesteps,mean_best_distance\n100,5.0\n200,4.0\n")
        learning_curve_png(tmp_path / "eval.csv", tmp_path / "l.png", baselines={"random": 6.0})
        assert matplotlib.get_backend() == "svg"
        for name in ("c.png", "l.png"):
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)


@pytest.mark.parametrize("budget", [4, 10, 60])
def test_match_auto_spends_its_budget_once_not_once_per_synth(recording, tmp_path, budget):
    from synthenv.agents.match import match
    from synthenv.synths import available_synths

    n = len(available_synths())
    with pytest.raises(SynthenvError, match=f"needs a budget of at least {n} renders"):
        match(recording, synth="auto", budget=n - 1, backend="numpy", out_dir=tmp_path / "small", log=lambda *a: None)

    seen = []
    best = match(recording, synth="auto", budget=budget, backend="numpy", out_dir=tmp_path / str(budget),
                 log=lambda *a: None, progress=lambda renders, d: seen.append((renders, d)))  # fmt: skip
    assert seen[-1][0] == budget == best["renders"]  # every synth probed, all in one budget
    assert best["synth"] in available_synths() and best["distance"] == pytest.approx(seen[-1][1], rel=1e-5)
    assert [d for _, d in seen] == sorted((d for _, d in seen), reverse=True)


def test_match_auto_hands_the_probe_of_the_chosen_synth_to_its_cold_search(recording, tmp_path, monkeypatch):
    """A cold ``--synth auto``: the chosen synth's search is given that synth's probe renders (X and their
    distances) as part of its budget, so they count as the start of its exploring batch."""
    import synthenv.agents.match as match_module
    from synthenv.synths import available_synths

    calls = []

    def spy(method, objective, dim, budget, seed, x0=None, starts=None, known=None, residuals=None):
        calls.append({"budget": budget, "x0": x0, "starts": starts, "known": known})
        return run_search(method, objective, dim, budget, seed, x0, starts, known, residuals)

    monkeypatch.setattr(match_module, "run_search", spy)
    n, budget = len(available_synths()), 60
    k = match_module.probe_size(budget, n)  # the probe's renders per synth
    assert k == 4  # a quarter of 60 over 4 synths is 3: at least 4 each
    best = match_module.match(recording, synth="auto", budget=budget, init="cold", backend="numpy",
                              out_dir=tmp_path, log=lambda *a: None)  # fmt: skip
    assert len(calls) == 1 and best["renders"] == budget
    call = calls[0]
    assert call["starts"] is None and call["known"] is not None
    X, d = call["known"]
    assert X.shape[0] == len(d) == k and call["budget"] == budget - (n - 1) * k  # its probe plus what is left
    assert best["distance"] <= d.min()


def test_match_cmaes_from_the_starts_gets_the_residuals_where_the_distance_has_them(recording, tmp_path, monkeypatch):
    """``match --method cmaes`` hands CMA-ES the distance's residuals (for :func:`gauss_newton_start`) where
    the distance has them, and not where it has none (``multiscale``): the search still runs."""
    import synthenv.agents.match as match_module

    calls = []

    def spy(method, objective, dim, budget, seed, x0=None, starts=None, known=None, residuals=None):
        calls.append(residuals)
        return run_search(method, objective, dim, budget, seed, x0, starts, known, residuals)

    monkeypatch.setattr(match_module, "run_search", spy)
    for distance in ("audible", "multiscale"):
        best = match_module.match(recording, synth="subtractive", method="cmaes", budget=80, backend="numpy",
                                  distance=distance, out_dir=tmp_path / distance, log=lambda *a: None)  # fmt: skip
        assert best["init"] == "inverse" and best["renders"] == 80
    assert callable(calls[0]) and calls[1] is None


def test_local_searches_start_from_the_best_of_a_space_filling_batch():
    """CMA-ES and the hill climber spend a quarter of the budget exploring first, then refine its best:
    they beat random sampling at the same budget on a multimodal objective, from a poor start."""
    from synthenv.agents.search import explore_size

    def rastrigin(X):  # many local minima; global minimum 0 at x = 0.3
        z = 6 * (np.atleast_2d(X) - 0.3)
        return (10 * z.shape[1] + (z**2 - 10 * np.cos(2 * np.pi * z)).sum(axis=1)) / 10

    dim, budget = 6, 200
    assert explore_size(budget, dim) == 50 and explore_size(10, dim) == 9  # a quarter; never the whole budget
    assert explore_size(1000, 5) == 50  # at most ten per dimension: a big budget goes to refining
    for method in ("cmaes", "hillclimb"):
        found = [run_search(method, rastrigin, dim, budget, seed=s, x0=np.full(dim, 0.9)).distance for s in range(8)]
        rnd = [run_search("random", rastrigin, dim, budget, seed=s).distance for s in range(8)]
        assert np.mean(found) < 0.9 * np.mean(rnd), (method, np.mean(found), np.mean(rnd))  # deterministic (seeded)


@pytest.mark.parametrize("method", ["cmaes", "hillclimb"])
def test_a_cold_search_counts_renders_it_is_given_as_part_of_its_exploration(method):
    """``--synth auto`` probes every synth first; the chosen synth's cold search takes the probe's renders
    as the start of its space-filling batch (not as a start to refine from), so it explores as much as
    a search that started alone. From an inverse model's starts (``starts`` given) it refines at once."""
    from synthenv.agents.search import explore_size

    dim, budget = 6, 200
    obj = quadratic(np.full(dim, 0.3))
    probe = np.random.default_rng(5).random((12, dim))
    calls = []
    res = run_search(method, lambda X: calls.append(len(X)) or obj(X), dim, budget, 0, known=(probe, obj(probe)))
    assert calls[0] == explore_size(budget, dim) - len(probe) and sum(calls) == budget - len(probe) == res.renders - 12
    calls.clear()
    run_search(method, lambda X: calls.append(len(X)) or obj(X), dim, budget, 0, starts=probe[:0],
               known=(probe, obj(probe)))  # fmt: skip
    assert calls[0] < 20  # a local step (a CMA-ES generation, a climber's batch), no exploring batch
    many = np.random.default_rng(6).random((80, dim))  # a probe larger than the exploring batch: nothing more
    res = run_search(method, obj, dim, 1000, 0, known=(many, obj(many)))
    assert res.renders == 1000 and res.distance < obj(many).min()


def _curve_fit_problem(dim: int = 5):
    """A nonlinear least-squares problem like a synth's: residuals are a rendered 'spectrum' minus the
    target's, the distance their mean absolute value."""
    grid = np.linspace(0, 1, 64)
    target = np.linspace(0.25, 0.75, dim)

    def render(X):
        X = np.atleast_2d(X)
        return np.stack([np.exp(-((grid - 0.2 - 0.6 * x[0]) ** 2) / (0.01 + 0.05 * x[1])) * (0.5 + x[2])
                         + x[3] * np.sin(6 * grid + 3 * x[4]) for x in X])  # fmt: skip

    def residuals(X):
        R = (render(X) - render(target)) / 8.0
        return np.abs(R).mean(axis=1), R

    return target, residuals


def test_cmaes_lm_reaches_the_bottom_of_the_basin_cmaes_does_not_at_a_small_budget():
    """From a start in the right basin, 40 renders of CMA-ES then Levenberg-Marquardt get far closer than
    40 of CMA-ES alone (what the default match does after an inverse model's starts); the budget, the
    best-so-far curve and the residual contract hold, and without residuals it refuses."""
    target, residuals = _curve_fit_problem()
    objective = lambda X: residuals(X)[0]  # noqa: E731
    lm, cma = [], []
    for s in range(4):
        start = np.clip(target + np.random.default_rng(s).normal(0, 0.05, len(target)), 0, 1)[None]
        calls = []

        def counted(X, calls=calls):
            calls.append(len(X))
            return residuals(X)

        res = run_search("cmaes_lm", objective, 5, 40, s, starts=start, residuals=counted)
        assert res.renders == 40 == sum(calls) == len(res.curve)
        assert np.all(np.diff(res.curve) <= 0) and res.distance == pytest.approx(objective(res.x)[0])
        lm.append(res.distance)
        cma.append(run_search("cmaes", objective, 5, 40, s, starts=start).distance)
    assert np.mean(lm) < np.mean(cma) / 5, (lm, cma)
    with pytest.raises(ValueError, match="residuals"):
        run_search("cmaes_lm", objective, 5, 40, 0)
    cold = run_search("cmaes_lm", objective, 5, 200, 0, residuals=residuals)  # cold: explores first
    assert cold.renders == 200 and cold.distance < run_search("random", objective, 5, 200, 0).distance
    start = np.full((1, 5), 0.5)
    for budget in range(1, 30):  # small budgets: every render counted, none beyond the budget
        calls = []

        def counted(X, calls=calls):
            calls.append(len(X))
            return residuals(X)

        known = (start, objective(start))  # rendered without residuals (as a probe's or the starts')
        res = run_search("cmaes_lm", objective, 5, budget, 0, starts=start[:0], known=known, residuals=counted)
        assert res.renders == budget == sum(calls) + 1 and res.distance <= known[1][0]


def _valley(dim: int = 6, seed: int = 0):
    """Linear residuals ``A (x - x*)`` whose distance is a narrow valley at an angle to every axis (the
    Gauss-Newton Hessian ``AᵀA`` has eigenvalues 1 down to 1/400), as several synth parameters that
    trade off against each other make."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    A = np.diag(np.geomspace(1.0, 0.05, dim)) @ Q.T
    target = np.full(dim, 0.5)

    def residuals(X):
        R = (np.atleast_2d(X) - target) @ A.T
        return np.sqrt((R**2).sum(axis=1)), R

    return A, target, residuals


def test_gauss_newton_start_steps_to_the_models_minimum_and_is_long_along_the_valley():
    """Where CMA-ES from the starts begins: one damped Gauss-Newton step per LM_DAMPING from the best start
    (on linear residuals, the least damped lands near the minimum), and its first covariance, the inverse
    Gauss-Newton Hessian of the residuals, condition-limited and scaled to a mean variance of 1; the
    ``dim`` renders of the Jacobian (``dim + 1`` when the start was rendered without its residuals) and the
    steps' batch counted against the budget."""
    from synthenv.agents.search import LM_DAMPING, SHAPE_CONDITION, Tracker, gauss_newton_start

    dim = 6
    A, target, residuals = _valley(dim)
    t = Tracker(lambda X: residuals(X)[0], 50, residuals)
    t(np.full((1, dim), 0.4))
    before = t.best_d
    C = gauss_newton_start(t)
    assert len(t.curve) == 1 + dim + len(LM_DAMPING) and C.shape == (dim, dim)  # the start's residuals are known
    assert np.mean(np.diag(C)) == pytest.approx(1.0)
    assert t.best_d < 0.05 * before  # 0.01 damped: near the minimum (0.0029 from 0.083)
    e, B = np.linalg.eigh(C)
    flat = np.linalg.eigh(A.T @ A)[1][:, 0]  # the valley's direction: where the distance changes least
    assert abs(B[:, -1] @ flat) > 0.99 and e[-1] / e[0] == pytest.approx(400.0, rel=0.01)
    A[:] = np.diag(np.geomspace(1.0, 1e-3, dim)) @ np.linalg.qr(A.T)[0].T  # far steeper: the limit holds
    t = Tracker(lambda X: residuals(X)[0], 50, residuals)
    t(np.full((1, dim), 0.4))
    e = np.linalg.eigvalsh(gauss_newton_start(t))
    assert e[-1] / e[0] == pytest.approx(SHAPE_CONDITION, rel=0.01)
    t = Tracker(lambda X: residuals(X)[0], 50, lambda X: (residuals(X)[0], np.full_like(residuals(X)[1], np.nan)))
    t(np.full((1, dim), 0.4))
    assert gauss_newton_start(t) is None and len(t.curve) == 1 + dim  # no finite Jacobian: no steps


def test_cmaes_from_the_starts_with_residuals_begins_at_the_gauss_newton_step_along_the_valley():
    """Given the distance's residuals, CMA-ES from a start begins from the local quadratic model there
    (what ``match --method cmaes`` does from an inverse model's starts): from a start in the right
    valley but far along its floor (where an inverse model's closest guess tends to be: on a real piano
    note, Levenberg-Marquardt moved three parameters by 0.3-0.7 together from there), at 80 renders it
    gets closer than without them, every render counted, and only the Jacobian's batch is rendered with
    residuals. A cold search (no starts) does not use them (from the best of its exploring batch a
    Gauss-Newton start made fm's in-domain matches farther: README, "CMA-ES begins at the Gauss-Newton
    step")."""
    from synthenv.agents.search import LM_DAMPING

    dim = 6
    A, target, residuals = _valley(dim)
    objective = lambda X: residuals(X)[0]  # noqa: E731
    floor = np.linalg.eigh(A.T @ A)[1][:, 0]
    shaped, plain = [], []
    for s in range(6):
        start = np.clip(target + 0.35 * floor + np.random.default_rng(s).normal(0, 0.02, dim), 0, 1)[None]
        calls, with_r = [], []

        def counted(X, with_r=with_r):
            with_r.append(len(X))
            return residuals(X)

        res = run_search("cmaes", lambda X, calls=calls: calls.append(len(X)) or objective(X), dim, 80, s, starts=start,
                         residuals=counted)  # fmt: skip
        assert with_r == [1 + dim] and res.renders == 80 == sum(calls) + sum(with_r) == len(res.curve)
        assert calls[:2] == [1, len(LM_DAMPING)]  # the start, then the Gauss-Newton steps from it
        jacobian_done = 1 + dim  # the curve's index of the last render of the start and the Jacobian's batch
        steps = res.curve[jacobian_done + len(LM_DAMPING)]
        assert steps < 0.5 * res.curve[jacobian_done], res.curve  # CMA-ES begins at the model's minimum: closer (0.29x)
        assert np.all(np.diff(res.curve) <= 0)
        shaped.append(res.distance)
        plain.append(run_search("cmaes", objective, dim, 80, s, starts=start).distance)
    assert np.mean(shaped) < 0.7 * np.mean(plain), (shaped, plain)
    with_r = []
    cold = [run_search("cmaes", objective, dim, 80, 0, residuals=r).distance
            for r in (lambda X: with_r.append(len(X)) or residuals(X), None)]  # fmt: skip
    assert cold[0] == cold[1] and with_r == []


@pytest.mark.slow
def test_issue_12s_command_from_the_starts_beats_random_on_every_shipped_note(tmp_path):
    """`synthenv match NOTE --synth auto --method cmaes --budget 200` (from the inverse models' starts, the
    default start) against the best of 200 random patches of the synth it chose, on the match's own
    objective: closer on every shipped note. Measured with CMA-ES from the Gauss-Newton step: 0.41 (flute,
    additive), 0.50 (guitar, subtractive), 0.32 (piano, additive), 0.27 (trumpet, additive), 0.30 (violin,
    additive); five releases before, with voice chosen for four: 0.60, 0.50, 0.75, 0.51, 0.74. Cold,
    subtractive loses on the trumpet (``test_cmaes_matches_sampled_real_instruments``)."""
    from synthenv.agents.match import match, random_patches_distance
    from synthenv.samples import instrument_notes

    ratios = {}
    for name, note in instrument_notes().items():
        best = match(note, synth="auto", method="cmaes", budget=200, backend="numpy", out_dir=tmp_path / name,
                     log=lambda *a: None)  # fmt: skip
        assert best["init"] == "inverse" and best["renders"] == 200, best
        ratios[name] = best["distance"] / random_patches_distance(note, best["synth"], 200, name=best["distance_name"])
    assert max(ratios.values()) < 0.9, ratios
