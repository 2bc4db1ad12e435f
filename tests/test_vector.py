"""The natively batched vector env and the SB3 adapter."""

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_scsynth

import synthenv
from synthenv.inverse import InverseModel, load_model
from synthenv.vector import SoundMatchVectorEnv

SYNTHS = ["fm", "subtractive", "additive", "voice"]


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


def _one_row_passes(predict, model, logmel):
    """``predict`` (an :class:`InverseModel` method) run on one row of ``logmel`` at a time, concatenated."""
    hyp, scores = zip(*(predict(model, logmel[i : i + 1]) for i in range(len(logmel))), strict=True)
    return np.concatenate(hyp), np.concatenate(scores)


@pytest.mark.parametrize(
    "kwargs",
    [{"synth": s} for s in SYNTHS]
    + [{"synth": "subtractive", "init": "inverse", "inverse_starts": 4, "step_from": "best", "observe_move": True,
        "move_gain": 0.25, "action_scale": 0.05}],  # the suggested move, cached per step, across autoresets
)  # fmt: skip
def test_vector_env_equals_single_envs_with_the_same_seeds_and_actions(kwargs, monkeypatch):
    n, seed = 4, 100
    if "init" in kwargs:
        # a forward pass over 4 rows differs from 4 one-row passes in float32's last bits (checked in
        # test_batched_inverse_model_equals_one_row_passes); steps that follow the move carry that into
        # the params and a render can amplify it (~3e-3 in the features), so compare the envs' logic with
        # the one-row passes the single envs make
        real = InverseModel.predict
        monkeypatch.setattr(InverseModel, "predict", lambda self, logmel: _one_row_passes(real, self, logmel))
    venv = SoundMatchVectorEnv(n, max_steps=4, **kwargs)
    singles = [gym.make(synthenv.ENV_ID, max_steps=4, **kwargs) for _ in range(n)]
    atol = 1e-5
    obs_v, info_v = venv.reset(seed=seed)
    obs_s = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(singles)])
    np.testing.assert_allclose(obs_v, obs_s, atol=atol)
    rng = np.random.default_rng(0)
    done_seen = False
    for _ in range(10):  # crosses episode ends: autoreset is compared too
        actions = rng.uniform(-1, 1, venv.action_space.shape).astype(np.float32)
        obs_v, rew_v, term_v, trunc_v, info_v = venv.step(actions)
        res = _singles_step(singles, actions)
        np.testing.assert_allclose(obs_v, np.stack([r[0] for r in res]), atol=atol)
        np.testing.assert_allclose(rew_v, [r[1] for r in res], atol=atol)
        np.testing.assert_array_equal(term_v, [r[2] for r in res])
        np.testing.assert_array_equal(trunc_v, [r[3] for r in res])
        if (term_v | trunc_v).any():
            done_seen = True
            assert info_v["_final_obs"][term_v | trunc_v].all()
    assert done_seen


@pytest.mark.parametrize("synth", SYNTHS)
def test_batched_inverse_model_equals_one_row_passes(synth):
    model = load_model(None, synth)
    logmel = np.random.default_rng(0).uniform(-80.0, 0.0, (4, model.meta["n_frames"], model.meta["n_mels"]))
    hyp, scores = model.predict(logmel)
    hyp_rows, scores_rows = _one_row_passes(InverseModel.predict, model, logmel)
    np.testing.assert_allclose(hyp, hyp_rows, atol=1e-5)
    np.testing.assert_allclose(scores, scores_rows, atol=1e-5)


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
    for i, info in enumerate(infos):
        assert info["terminal_observation"].shape == venv.observation_space.shape
        assert not np.allclose(info["terminal_observation"], obs[i])  # the old episode's, not the new one's
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    venv.close()


@pytest.mark.parametrize("threshold, truncated, steps", [(0.0, True, 3), (1000.0, False, 1)])
def test_sb3_infos_describe_the_episode_that_just_ended(threshold, truncated, steps):
    """SB3 reads the finished episode from infos[i]: its last distance, success, step and metrics,
    not the next episode's first."""
    from synthenv.vector import make_sb3_vec_env

    venv = make_sb3_vec_env(4, synth="fm", max_steps=3, success_threshold=threshold, metrics="final")
    venv.seed(0)
    venv.reset()
    core = venv.venv.core
    for step in range(1, steps + 1):
        before = [dict(d) for d in core.infos(venv.venv._ep)]
        obs, rewards, dones, infos = venv.step(np.full((4, 5), 0.5, np.float32))
        assert dones.all() == (step == steps)
    after_reset = core.infos(venv.venv._ep)  # the new episodes the sub-envs are in now
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is truncated and info["is_success"] is (not truncated)
        assert info["success"] is (not truncated) and info["step"] == steps
        assert after_reset[i]["step"] == 0 and info["distance"] != after_reset[i]["distance"]
        assert info["params"] != before[i]["params"]  # the params the last step moved to
        assert info["metrics"]["logmel_l1"] == pytest.approx(info["distance"], rel=1e-5)
        np.testing.assert_array_equal(obs[i], core.observe(venv.venv._ep)[i])  # obs: the new episode's
    venv.close()


def test_sb3_env_method_calls_the_shared_core_once(monkeypatch):
    from synthenv.vector import make_sb3_vec_env

    venv = make_sb3_vec_env(8, synth="fm", metrics=False)
    calls = []
    monkeypatch.setattr(venv.venv.core, "render_image", lambda ep, i: calls.append(i) or i, raising=True)
    venv.reset()
    assert venv.env_method("render_image", venv.venv._ep, 0) == [0] * 8
    assert calls == [0]
    assert venv.get_attr("max_steps", indices=[1, 2]) == [50, 50]
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
