"""The natively batched vector env and the SB3 adapter."""

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_scsynth

import synthenv
from synthenv.vector import SoundMatchVectorEnv

SYNTHS = ["fm", "subtractive", "additive"]


def test_make_vec_uses_the_native_vector_env():
    venv = gym.make_vec(synthenv.ENV_ID, num_envs=4, synth="fm")
    assert isinstance(venv, SoundMatchVectorEnv)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, infos = venv.reset(seed=0)
    assert obs.shape == (4, *venv.single_observation_space.shape) and obs.dtype == np.float32
    assert venv.observation_space.contains(obs)
    venv.close()


def test_one_backend_call_per_step(monkeypatch):
    venv = SoundMatchVectorEnv(16, synth="subtractive", metrics=False, success_threshold=0.0)
    venv.reset(seed=0)
    calls = []
    real = venv.core.backend.render
    monkeypatch.setattr(venv.core.backend, "render", lambda spec, p: calls.append(len(p)) or real(spec, p))
    venv.step(venv.action_space.sample())
    assert calls == [16]


def _singles_step(singles, actions):
    out = []
    for env, a in zip(singles, actions, strict=True):
        obs, r, term, trunc, info = env.step(a)
        if term or trunc:  # what SAME_STEP autoreset returns
            obs, _ = env.reset()
        out.append((obs, r, term, trunc))
    return out


@pytest.mark.parametrize("synth", SYNTHS)
def test_vector_env_equals_single_envs_with_the_same_seeds_and_actions(synth):
    n, seed = 4, 100
    venv = SoundMatchVectorEnv(n, synth=synth, max_steps=4)
    singles = [gym.make(synthenv.ENV_ID, synth=synth, max_steps=4) for _ in range(n)]
    obs_v, info_v = venv.reset(seed=seed)
    obs_s = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(singles)])
    np.testing.assert_allclose(obs_v, obs_s, atol=1e-5)
    rng = np.random.default_rng(0)
    done_seen = False
    for _ in range(10):  # crosses episode ends: autoreset is compared too
        actions = rng.uniform(-1, 1, venv.action_space.shape).astype(np.float32)
        obs_v, rew_v, term_v, trunc_v, info_v = venv.step(actions)
        res = _singles_step(singles, actions)
        np.testing.assert_allclose(obs_v, np.stack([r[0] for r in res]), atol=1e-5)
        np.testing.assert_allclose(rew_v, [r[1] for r in res], atol=1e-5)
        np.testing.assert_array_equal(term_v, [r[2] for r in res])
        np.testing.assert_array_equal(trunc_v, [r[3] for r in res])
        if (term_v | trunc_v).any():
            done_seen = True
            assert info_v["_final_obs"][term_v | trunc_v].all()
    assert done_seen


def test_bad_actions_are_rejected_and_lose_nothing():
    venv = SoundMatchVectorEnv(3, synth="fm")
    obs, _ = venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 5\), expected \(3, 5\)"):
        venv.step(np.zeros((2, 5)))
    bad = np.zeros((3, 5))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        venv.step(bad)
    obs2, *_ = venv.step(np.zeros((3, 5)))
    np.testing.assert_allclose(obs2, obs, atol=1e-6)  # zero delta actions: same sounds


def test_sb3_adapter_reports_terminal_observations_and_trains():
    from stable_baselines3 import PPO

    from synthenv.vector import make_sb3_vec_env

    venv = make_sb3_vec_env(8, synth="fm", max_steps=3, metrics=False)
    venv.seed(5)
    obs = venv.reset()
    assert obs.shape == (8, venv.observation_space.shape[0])
    for _ in range(3):
        obs, rewards, dones, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(8)]))
    assert dones.all()
    for info in infos:
        assert info["terminal_observation"].shape == venv.observation_space.shape
        assert info["TimeLimit.truncated"] in (True, False)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    venv.close()


@needs_scsynth
@pytest.mark.scsynth
def test_vector_env_on_nrt_renders_all_sub_envs_in_one_scsynth_call(monkeypatch):
    import subprocess

    venv = gym.make_vec(
        synthenv.ENV_ID,
        num_envs=32,
        synth="fm",
        backend="nrt",
        metrics=False,
        success_threshold=0.0,
        backend_options={"processes": 1},
    )  # no autoreset this step
    venv.reset(seed=0)
    calls = []
    real = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: calls.append(cmd) or real(cmd, *a, **k))
    obs, rewards, *_ = venv.step(venv.action_space.sample())
    assert len(calls) == 1 and np.isfinite(rewards).all() and obs.shape[0] == 32
    venv.close()
