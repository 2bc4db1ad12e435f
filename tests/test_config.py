"""Bad configuration is refused up front: a clear error, nothing started, nothing written."""

import subprocess
import sys

import pytest
from conftest import audio_servers, needs_jackd, needs_scsynth, new_servers_after

import synthenv
from synthenv.env import SoundMatchEnv, check_env_kwargs
from synthenv.vector import SoundMatchVectorEnv

LIVE_ERRORS = [
    ({"targets": "missing.wav"}, "not found"),
    ({"distance": "logmel_l1"}, "needs audio features"),
    ({"features": "audio"}, "live backend has no audio features"),
    ({"metrics": "sometimes"}, "metrics must be one of"),
    ({"max_steps": -1}, "max_steps"),
    ({"action_scale": float("nan")}, "action_scale"),
    ({"duration": 0.1}, "too short for server features"),
    ({"sample_rate": 1000}, "sample_rate"),
    ({"backend_options": {"port": 57110}}, "unknown option.*'port'.*live backend"),
    ({"backend_options": {"jack": "pulse"}}, "jack must be"),
    ({"backend_options": {"server": "no-port-here"}}, "host:port"),
    ({"synth": "moog"}, "unknown synth"),
    ({"success_bonus": -1.0}, "success_bonus"),
]


@needs_scsynth
@needs_jackd
@pytest.mark.scsynth
@pytest.mark.parametrize("kwargs, match", LIVE_ERRORS, ids=[next(iter(k)) for k, _ in LIVE_ERRORS])
def test_a_failed_live_constructor_leaves_no_process(kwargs, match):
    before = audio_servers()
    with pytest.raises(synthenv.SynthenvError, match=match):
        SoundMatchEnv(**{"backend": "live", **kwargs})
    with pytest.raises(synthenv.SynthenvError, match=match):
        SoundMatchVectorEnv(4, **{"backend": "live", **kwargs})
    assert not new_servers_after(before, grace=2.0), "a failed constructor left scsynth or jackd running"


def test_check_env_kwargs_fills_in_defaults_and_starts_nothing():
    a = check_env_kwargs(synth="subtractive", backend="nrt", features="server")
    assert a["distance"] == "server_l1" and a["max_steps"] == 50 and a["targets"] is None and a["metrics"] is False
    with pytest.raises(synthenv.ConfigError, match="unknown backend 'bogus'"):
        check_env_kwargs(backend="bogus")
    with pytest.raises(synthenv.ConfigError, match="unexpected keyword argument 'colour'.*it takes: synth"):
        check_env_kwargs(colour="red")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend", "bogus"], "unknown backend 'bogus'"),
        (["--features", "mfcc"], "features must be one of"),
        (["--synth", "moog"], "unknown synth 'moog'"),
        (["--features", "server"], "numpy backend has no server features"),
        (["--set", "ppo.learning_rat=1e-4"], "unknown PPO hyperparameter"),
        (["--set", "env.max_steps=0"], "max_steps must be a positive integer"),
        (["--n-envs", "0"], "n_envs must be a positive integer"),
        (["--timesteps", "0"], "total_timesteps must be a positive integer"),
    ],
)
def test_train_with_bad_arguments_writes_nothing(args, message, tmp_path):
    pytest.importorskip("stable_baselines3", reason="training extra not installed (pip install 'synthenv[train]')")
    run = tmp_path / "RUN"
    proc = subprocess.run([sys.executable, "-m", "synthenv.cli", "train", *args, "-o", str(run)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("synthenv train: error:"), proc.stderr
    assert not run.exists()


def test_train_that_fails_to_start_its_envs_writes_nothing(tmp_path, monkeypatch):
    pytest.importorskip("stable_baselines3", reason="training extra not installed (pip install 'synthenv[train]')")
    from synthenv.agents.train import make_config, train

    monkeypatch.setenv("SYNTHENV_SCSYNTH", str(tmp_path / "no-scsynth"))  # the nrt backend cannot start
    cfg = make_config(synth="fm", backend="nrt", timesteps=64, n_envs=2)
    with pytest.raises(synthenv.BackendError, match="scsynth not found"):
        train(cfg, tmp_path / "RUN", progress_bar=False, log=lambda *a: None)
    assert not (tmp_path / "RUN").exists()
