"""stable-baselines3 trains on the numpy env: a smoke test that PPO runs end to end."""

import gymnasium as gym
import numpy as np
import pytest

import synthenv

pytest.importorskip("stable_baselines3", reason="training extra not installed (pip install 'synthenv[train]')")


def test_ppo_runs_and_predicts(tmp_path):
    from stable_baselines3 import PPO

    env = gym.make(synthenv.ENV_ID, synth="fm", max_steps=8, metrics=False)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    obs, _ = env.reset(seed=0)
    untrained, _ = model.predict(obs, deterministic=True)
    model.learn(total_timesteps=128)
    trained, _ = model.predict(obs, deterministic=True)
    assert not np.allclose(trained, untrained)  # learning changed the policy
    model.save(tmp_path / "ppo")
    loaded = PPO.load(tmp_path / "ppo", device="cpu")
    action, _ = loaded.predict(obs, deterministic=True)
    assert action.shape == env.action_space.shape
    np.testing.assert_array_equal(action, trained)  # the saved policy is the trained one
