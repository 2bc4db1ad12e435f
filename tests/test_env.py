"""SoundMatchEnv against gymnasium's and SB3's checkers, for every synth (in the manner of Minigrid)."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import synthenv
from synthenv.env import SoundMatchEnv
from synthenv.synths import available_synths

SYNTHS = ["fm", "subtractive", "additive", "voice"]


def test_builtin_synths_registered():
    assert set(SYNTHS) <= set(available_synths())


def test_registration_is_idempotent_and_module_prefixed():
    n = len(gym.registry)
    synthenv._register_envs()
    assert len(gym.registry) == n
    env = gym.make("synthenv:synthenv/SoundMatch-v0")
    assert isinstance(env.unwrapped, SoundMatchEnv)
    env.close()


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
@pytest.mark.parametrize("synth", SYNTHS)
def test_check_env_without_warnings(synth, render_mode):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(synthenv.ENV_ID, synth=synth, backend="numpy", render_mode=render_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("synth", SYNTHS)
def test_episode_runs_to_truncation(synth):
    env = gym.make(synthenv.ENV_ID, synth=synth, max_steps=12, success_threshold=0.0, metrics="final")
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    steps, truncated, terminated = 0, False, False
    while not (truncated or terminated):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        steps += 1
        assert ("metrics" in info) == (steps == 12)  # "final": every metric on the episode's last step only
    assert truncated and not terminated and steps == 12
    assert set(info) >= {"distance", "params", "target", "metrics", "success", "step"}
    assert set(info["metrics"]) >= {"logmel_l1", "mfcc_l1", "lsd", "spectral_convergence", "multiscale", "param_mae"}
    assert info["metrics"]["logmel_l1"] == pytest.approx(info["distance"], rel=1e-5)
    assert set(info["params"]) == set(synthenv.get_synth(synth).names)
    env.close()


@pytest.mark.parametrize("metrics, steps_with_metrics", [(False, []), (True, [1, 2, 3]), ("final", [3])])
def test_metrics_modes(metrics, steps_with_metrics):
    env = SoundMatchEnv(synth="fm", max_steps=3, success_threshold=0.0, metrics=metrics)
    _, info = env.reset(seed=0)
    assert ("metrics" in info) == (metrics is True)
    seen = []
    for step in (1, 2, 3):
        *_, info = env.step(np.zeros(5, np.float32))
        if "metrics" in info:
            seen.append(step)
    assert seen == steps_with_metrics


def test_reward_is_bounded_from_a_start_at_the_target():
    env = SoundMatchEnv(synth="fm")
    defaults = env.synth.to_dict(env.synth.defaults)
    _, info = env.reset(seed=0, options={"target_params": defaults})
    assert info["distance"] == pytest.approx(0.0, abs=1e-4) and info["success"]  # below the threshold at reset
    for action in (np.ones(5), -np.ones(5), np.zeros(5)):
        env.reset(seed=0, options={"target_params": defaults})
        _, reward, terminated, _, info = env.step(action.astype(np.float32))
        assert np.isfinite(reward) and abs(reward) <= 1 + env.success_bonus, (action, reward)
        assert terminated == info["success"] == (info["distance"] < env.success_threshold)
    # moving away from the target by a full step: the most negative reward there is
    env.reset(seed=0, options={"target_params": defaults})
    _, reward, *_ = env.step(np.ones(5, np.float32))
    assert reward == -1.0


def test_reward_is_bounded_for_every_start():
    env = SoundMatchEnv(synth="subtractive", init="random", action_mode="absolute")
    rng = np.random.default_rng(1)
    for seed in range(20):
        _, info = env.reset(seed=seed)
        assert info["success"] == (info["distance"] < env.success_threshold)
        _, reward, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        assert np.isfinite(reward) and -1.0 <= reward <= 1.0 + env.success_bonus


def _rollout(env, seed, n=8):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    for _ in range(n):
        obs, r, *_ = env.step(env.action_space.sample())
        out.append(obs)
        out.append(np.array([r]))
    return np.concatenate(out)


@pytest.mark.parametrize("synth", SYNTHS)
def test_same_seed_same_rollout(synth):
    a = _rollout(gym.make(synthenv.ENV_ID, synth=synth), seed=11)
    b = _rollout(gym.make(synthenv.ENV_ID, synth=synth), seed=11)
    c = _rollout(gym.make(synthenv.ENV_ID, synth=synth), seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pickle_roundtrip_continues_identically():
    env = SoundMatchEnv(synth="subtractive")
    env.reset(seed=5)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    action = np.linspace(-1, 1, env.action_space.shape[0]).astype(np.float32)
    a = env.step(action)
    b = clone.step(action)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_rgb_array_render():
    env = gym.make(synthenv.ENV_ID, synth="fm", render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 10  # not blank


def test_reward_is_relative_improvement_and_success_terminates():
    env = SoundMatchEnv(synth="fm", action_mode="absolute", metrics="final")
    spec = env.synth
    target = {"ratio": 2.0, "index": 3.0, "attack": 0.01, "decay": 0.5, "curve": -4.0, "freq": 330.0}
    obs, info = env.reset(seed=0, options={"target_params": target})
    d0 = info["distance"]
    x = spec.normalize(spec.from_dicts(target)[0])[env.search_index]
    obs, reward, terminated, truncated, info = env.step((2 * x - 1).astype(np.float32))
    assert info["distance"] < 1e-3 and terminated and not truncated
    assert reward == pytest.approx((d0 - info["distance"]) / d0 + env.success_bonus, rel=1e-5)
    assert info["metrics"]["param_mae"] < 1e-6


@pytest.mark.parametrize("vector", [False, True])
def test_reward_mode_best_rewards_only_new_bests(vector):
    """With reward_mode="best" a step is rewarded only for beating the episode's best distance so far
    (never negative), so the return is what the best candidate removed: (d0 - best) / d0. The default
    rewards every step's change, whose sum is what the last candidate removed."""
    from synthenv.vector import SoundMatchVectorEnv

    kw = {"synth": "fm", "max_steps": 13, "action_scale": 0.5, "success_threshold": 0.0}  # no autoreset in 12 steps
    envs = {m: SoundMatchVectorEnv(2, reward_mode=m, **kw) if vector else SoundMatchEnv(reward_mode=m, **kw)
            for m in ("best", "improvement")}  # fmt: skip
    try:
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1, 1, (12, 2, envs["best"].single_action_space.shape[0] if vector else 5))
        out = {}
        for mode, env in envs.items():
            _, info = env.reset(seed=3)
            d0 = np.atleast_1d(info["distance"]).copy()
            ds, rs = [], []
            for a in actions:
                _, r, term, trunc, info = env.step(a if vector else a[0])
                rs.append(np.atleast_1d(r))
                ds.append(np.atleast_1d(info["distance"]).copy())
            out[mode] = (d0, np.array(ds), np.array(rs))
        d0, ds, rs = out["best"]
        np.testing.assert_allclose(out["improvement"][1], ds)  # the same actions, the same candidates
        assert (rs >= 0).all() and (rs[np.diff(np.minimum.accumulate(np.vstack([d0, ds])), axis=0) == 0] == 0).all()
        np.testing.assert_allclose(rs.sum(axis=0), (d0 - np.minimum(d0, ds.min(axis=0))) / d0, rtol=1e-9)
        r_imp = out["improvement"][2]
        assert (r_imp < 0).any()  # some steps got worse: the default punishes them, "best" does not
        prev = np.vstack([d0, ds[:-1]])  # the default: each step's change, bounded at +-1
        np.testing.assert_allclose(r_imp, np.clip((prev - ds) / d0, -1, 1), rtol=1e-9)
    finally:
        for env in envs.values():
            env.close()


def test_step_from_best_moves_the_best_candidate_and_drops_worse_ones():
    """step_from="best": each action moves the episode's best candidate; a candidate that is not closer
    is scored and dropped, so the distance never rises, the observed sound and params are the best
    one's, and the reward is the best's improvement (never negative)."""
    from synthenv.features import summary_size

    env = SoundMatchEnv(synth="fm", step_from="best", max_steps=30, action_scale=0.2, success_threshold=0.0)
    s = summary_size("audio")
    try:
        obs, info = env.reset(seed=5)
        d0 = best = info["distance"]
        rng = np.random.default_rng(1)
        kept = dropped = 0
        for _ in range(12):
            a = rng.uniform(-1, 1, env.action_space.shape)
            before = env.search_x
            candidate = np.clip(before + env.action_scale * a, 0.0, 1.0)
            d_candidate = float(env.score(candidate[None])[0][0])  # what the step will render
            obs, reward, _, _, info = env.step(a)
            assert info["distance"] == pytest.approx(min(best, d_candidate), rel=1e-6)
            if d_candidate < best:
                np.testing.assert_allclose(env.search_x, candidate)
                kept += 1
            else:
                np.testing.assert_array_equal(env.search_x, before)
                dropped += 1
            assert reward == pytest.approx((best - info["distance"]) / d0, rel=1e-6, abs=1e-12) and reward >= 0
            best = info["distance"]
            _, an = env.score(env.search_x[None])  # the observation shows the best candidate
            np.testing.assert_allclose(obs[s : 2 * s], an.summary[0], atol=1e-4)
            np.testing.assert_allclose(obs[2 * s :], env.search_x, atol=1e-6)
        assert kept and dropped
    finally:
        env.close()


def test_step_from_best_in_the_vector_env_keeps_each_row_s_best():
    from synthenv.features import summary_size
    from synthenv.vector import SoundMatchVectorEnv

    env = SoundMatchVectorEnv(4, synth="fm", step_from="best", max_steps=20, action_scale=0.3, success_threshold=0.0)
    s = summary_size("audio")
    try:
        obs, info = env.reset(seed=2)
        d = info["distance"].copy()
        rng = np.random.default_rng(0)
        mixed = False
        for _ in range(10):
            new, _, _, _, info = env.step(rng.uniform(-1, 1, (4, *env.single_action_space.shape)))
            same = info["distance"] == d
            assert (info["distance"] <= d).all()
            np.testing.assert_array_equal(new[same], obs[same])  # a dropped candidate changes nothing
            assert not np.array_equal(new[~same][:, s:], obs[~same][:, s:]) or same.all()
            mixed |= bool(same.any() and (~same).any())
            obs, d = new, info["distance"].copy()
        assert mixed  # rows kept and dropped candidates in the same step
    finally:
        env.close()


def test_pitch_target_fixes_freq_and_search_exposes_it():
    fixed = SoundMatchEnv(synth="fm")
    assert "freq" not in fixed.search_names and fixed.action_space.shape == (5,)
    _, info = fixed.reset(seed=1)
    assert info["params"]["freq"] == pytest.approx(info["target"]["params"]["freq"])
    free = SoundMatchEnv(synth="fm", pitch="search")
    assert free.search_names[0] == "freq" and free.action_space.shape == (6,)
    # a match may move the fixed pitch (fm's carrier to a harmonic of the heard pitch): per candidate in
    # score(), for the rest of the episode with fix_pitch()
    j = fixed.synth.index("freq")
    x = fixed.search_x
    d_here, _ = fixed.score(x)
    d_there, _ = fixed.score(np.stack([x, x]), freq=[fixed.full_x(x)[j], 0.9])
    assert d_there[0] == pytest.approx(d_here[0]) and d_there[1] != pytest.approx(d_here[0])
    fixed.fix_pitch(0.9)
    assert fixed.full_x(x)[j] == 0.9 and fixed.score(x)[0][0] == pytest.approx(d_there[1])
    free.reset(seed=1)
    with pytest.raises(synthenv.SynthenvError, match="only with pitch='target'"):
        free.fix_pitch(0.5)
    with pytest.raises(synthenv.SynthenvError, match="only with pitch='target'"):
        free.score(free.search_x, freq=[0.5])


@pytest.mark.parametrize(
    "action, match",
    [
        (np.full(5, np.nan, np.float32), "NaN"),
        (np.zeros(3, np.float32), r"shape \(3,\), expected \(5,\)"),
        ("left", "action"),
    ],
)
def test_bad_actions_raise_and_lose_nothing(action, match):
    env = SoundMatchEnv(synth="fm")
    env.reset(seed=0)
    before = env.params
    with pytest.raises(ValueError, match=match):
        env.step(action)
    assert env.params == before
    env.step(np.zeros(5, np.float32))  # still usable


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"synth": "moog"}, "unknown synth"),
        ({"backend": "vst"}, "unknown backend 'vst'"),
        ({"action_mode": "relative"}, "action_mode must be one of"),
        ({"reward_mode": "final"}, "reward_mode must be one of"),
        ({"step_from": "start"}, "step_from must be one of"),
        ({"distance": "l2"}, "unknown distance"),
        ({"max_steps": 0}, "max_steps"),
        ({"targets": "/no/such/file.wav"}, "not found"),
        ({"render_mode": "human"}, "render_mode"),
        ({"features": "server"}, "numpy backend has no server features"),
        ({"features": "mfcc"}, "features must be one of"),
        ({"distance": "server_l1"}, "needs server features"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, KeyError, synthenv.SynthenvError), match=match):
        SoundMatchEnv(**kwargs)


def test_episode_against_a_recording(pluck_wav):
    env = gym.make(synthenv.ENV_ID, synth="additive", targets=str(pluck_wav), max_steps=5, metrics=True)
    obs, info = env.reset(seed=0)
    assert info["target"]["kind"] == "file"
    assert info["target"]["f0"] == pytest.approx(196.0, rel=0.02)
    assert info["params"]["freq"] == pytest.approx(info["target"]["f0"])
    assert "param_mae" not in info["metrics"]
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        done = term or trunc
    assert trunc


def test_step_before_reset_is_a_clear_error():
    env = SoundMatchEnv()
    with pytest.raises(synthenv.SynthenvError, match="reset"):
        env.step(np.zeros(5, np.float32))
    for view in ("params", "search_x", "target_analysis", "current_audio"):
        with pytest.raises(synthenv.SynthenvError, match="reset"):
            getattr(env, view)


def test_public_views_follow_the_episode():
    """search_x, full_x, params and target_analysis are what search baselines and agents read."""
    env = SoundMatchEnv(synth="fm", action_scale=0.1)
    _, info = env.reset(seed=3)
    before = env.search_x
    action = np.full(5, 0.5, np.float32)
    _, _, _, _, info = env.step(action)
    x = env.search_x
    np.testing.assert_allclose(x, np.clip(before + 0.05, 0, 1))
    assert env.full_params(x) == pytest.approx(info["params"])
    assert env.params == pytest.approx(info["params"])
    j = env.synth.index("freq")  # fixed from the target, not searched
    assert env.full_x(x)[j] == pytest.approx(env.synth.normalize(env.target.params)[j])
    d, _ = env.score(x[None])
    t = env.target_analysis
    assert t.logmel.shape[0] == 1 and d[0] == pytest.approx(info["distance"], rel=1e-6)
    x[0] = 0.99  # a copy: the episode is untouched
    assert env.search_x[0] != 0.99


def test_core_works_without_torch_or_stable_baselines3():
    import subprocess
    import sys

    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'stable_baselines3', 'sb3_contrib'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import gymnasium as gym, numpy as np, synthenv\n"
        "audio = synthenv.render('fm', {'freq': 220})\n"
        "env = gym.make('synthenv/SoundMatch-v0', synth='fm')\n"
        "env.reset(seed=0); env.step(np.zeros(5, np.float32))\n"
        "venv = gym.make_vec('synthenv/SoundMatch-v0', num_envs=2)\n"
        "venv.reset(seed=0); venv.step(np.zeros((2, 5), np.float32))\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok', audio.shape)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok (22050,)" in r.stdout, r.stderr


def test_every_distance_has_a_success_threshold():
    from synthenv import distances
    from synthenv.env import SUCCESS_THRESHOLDS

    assert set(SUCCESS_THRESHOLDS) == set(distances.available_distances())
    env = SoundMatchEnv(synth="fm", distance="audible", metrics=True)
    _, info = env.reset(seed=0, options={"target_params": env.synth.to_dict(env.synth.defaults)})
    assert info["success"] and env.success_threshold == 1.5
