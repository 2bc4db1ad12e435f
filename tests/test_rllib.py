"""The Ray RLlib engine: a tiny run through the CLI, its run folder, eval and match on it, no process
left behind (Ray's, scsynth, jackd), Ctrl-C, the NEXT_STEP vector env RLlib steps, and the core
without ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile

from synthenv.agents.rllib_env import NextStepSoundMatchVectorEnv, make_env
from synthenv.vector import SoundMatchVectorEnv

ray = pytest.importorskip("ray", reason="the rllib extra is not installed (pip install 'synthenv[rllib]')")

OURS = ("raylet", "gcs_server", "ray::", "scsynth", "jackd")
TINY = ["--synth", "fm", "--set", "ppo.n_steps=16", "--set", "ppo.batch_size=64", "--set", "ppo.n_epochs=1",
        "--set", "eval_targets=2", "--set", "eval_budget=5", "--set", "eval_every=128",
        "--set", "checkpoint_every=128", "--no-progress"]  # fmt: skip


def _cli(args: list[str], mark: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, SYNTHENV_TEST_MARK=mark)
    env.pop("RAY_ADDRESS", None)  # a private Ray instance, whatever the developer runs
    return subprocess.run([sys.executable, "-m", "synthenv.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)  # fmt: skip


def _marked(mark: str) -> list[str]:
    """Running processes (Ray's, scsynth, jackd) whose environment carries ``mark``: started by our
    command or by its descendants (Ray's workers and the scsynth they start inherit the environment)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"SYNTHENV_TEST_MARK={mark}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(name in cmd for name in OURS):
            found.append(f"{proc.name} {cmd[:100]}")
    return found


def _none_left(mark: str, grace: float = 10.0) -> list[str]:
    deadline = time.monotonic() + grace
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_core_does_not_import_ray():
    code = ("import sys, synthenv, synthenv.env, synthenv.vector, synthenv.cli, synthenv.agents.train, "
            "synthenv.agents.rllib, synthenv.agents.rllib_env; "
            "assert 'ray' not in sys.modules, 'ray imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_rllib_engine_without_ray_is_one_line(tmp_path):
    argv = ["train", "--engine", "rllib", "--timesteps", "100", "-o", str(tmp_path / "run")]
    code = f"import sys; sys.modules['ray'] = None; from synthenv.cli import main; sys.exit(main({argv!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'synthenv[rllib]'" in lines[0], out.stderr
    assert not (tmp_path / "run").exists()


def test_rllib_options_need_the_rllib_engine(tmp_path):
    from synthenv.agents.train import make_config
    from synthenv.errors import ConfigError

    with pytest.raises(ConfigError, match="--engine rllib"):
        make_config(num_env_runners=2)
    with pytest.raises(ConfigError, match="recurrent"):
        make_config(engine="rllib", recurrent=True)
    with pytest.raises(ConfigError, match="does not map"):
        make_config(engine="rllib", overrides=["ppo.use_sde=true"])
    cfg = make_config(engine="rllib", num_env_runners=2, n_envs=64)
    from synthenv.agents.rllib import rllib_training_kwargs, runner_layout

    assert runner_layout(cfg) == (2, 32)
    kw = rllib_training_kwargs(cfg)
    assert kw["train_batch_size_per_learner"] == cfg["ppo"]["n_steps"] * 64
    assert kw["minibatch_size"] == cfg["ppo"]["batch_size"] and kw["use_kl_loss"] is False


def test_next_step_vector_env_matches_same_step():
    """RLlib's NEXT_STEP view of the batched env: the step that ends an episode returns its last
    observation; the next step starts the new episode (action ignored, reward 0)."""
    kw = dict(synth="fm", backend="numpy", max_steps=3, metrics=False)
    seeds = [11, 12, 13, 14]
    a, b = NextStepSoundMatchVectorEnv(4, **kw), SoundMatchVectorEnv(4, **kw)
    try:
        oa, _ = a.reset(seed=seeds)
        ob, _ = b.reset(seed=seeds)
        np.testing.assert_array_equal(oa, ob)
        rng = np.random.default_rng(0)
        for _ in range(3):
            act = rng.uniform(-1, 1, (4, a.single_action_space.shape[0]))
            oa, ra, ta, tra, _ = a.step(act)
            ob, rb, tb, trb, ib = b.step(act)
            np.testing.assert_allclose(ra, rb)
        assert tra.all() and trb.all()
        np.testing.assert_array_equal(oa, np.stack(ib["final_obs"]))  # the last observation, not the next start
        oa, ra, ta, tra, ia = a.step(rng.uniform(-1, 1, (4, a.single_action_space.shape[0])))
        np.testing.assert_array_equal(oa, ob)  # the next episode's first observation
        assert not ra.any() and not (ta | tra).any() and not ia["step"].any()
        # some sub-envs start again while the others act
        a._ended = np.array([True, False, True, False])
        act = rng.uniform(-1, 1, (4, a.single_action_space.shape[0]))
        steps_before = a._ep.steps.copy()
        oa, ra, _, _, ia = a.step(act)
        assert list(ia["step"]) == [0, steps_before[1] + 1, 0, steps_before[3] + 1]
        assert ra[0] == 0 and ra[2] == 0
        assert isinstance(make_env({"synth": "fm", "num_envs": 2}), NextStepSoundMatchVectorEnv)
    finally:
        a.close()
        b.close()


def test_rllib_train_eval_match_cli(tmp_path):
    """A tiny RLlib run through the CLI (one env runner, numpy): the run folder, a loadable policy,
    `synthenv eval` and `synthenv match --method ppo` on it, and nothing left running."""
    mark = uuid.uuid4().hex
    run = tmp_path / "run"
    out = _cli(["train", "--engine", "rllib", "--timesteps", "300", "--num-env-runners", "1", "--envs-per-runner", "8",
                *TINY, "-o", str(run)], mark)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert not _none_left(mark), "training left processes running"
    config = json.loads((run / "config.json").read_text())
    assert config["engine"] == "rllib" and config["num_env_runners"] == 1 and config["envs_per_runner"] == 8
    for name in ("eval.csv", "learning_curve.png", "report.md", "report.json", "model/obs_filter.npz"):
        assert (run / name).is_file(), name
    assert list((run / "checkpoints").glob("model_*_steps/obs_filter.npz"))
    assert list((run / "tb").rglob("events.out.tfevents.*"))
    rows = (run / "eval.csv").read_text().strip().splitlines()
    assert len(rows) >= 3 and int(rows[-1].split(",")[0]) >= 300  # periodic and final evaluations

    from synthenv.agents.policy import load_policy

    policy = load_policy(run)
    obs = np.zeros(policy.model.observation_space.shape, np.float32)
    action, _ = policy.act(obs)
    assert action.shape == policy.model.action_space.shape and np.all(np.abs(action) <= 1)
    import torch  # sampled actions (a step_from="best" run samples): around the mean, within bounds, seeded

    torch.manual_seed(0)
    sampled = np.stack([policy.model.predict(obs[None], deterministic=False)[0][0] for _ in range(200)])
    assert np.all(np.abs(sampled) <= 1) and sampled.std(axis=0).min() > 0.01
    mean = policy.model.predict(obs[None])[0][0]
    assert np.all(np.abs(np.median(sampled, axis=0) - mean) < 0.3)
    torch.manual_seed(0)
    assert np.array_equal(policy.model.predict(obs[None], deterministic=False)[0][0], sampled[0])
    assert not ray.is_initialized()  # loading the policy started no Ray instance

    out = _cli(["eval", str(run), "--n", "2", "--budget", "10", "--no-progress"], mark)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| ppo |" in out.stdout
    assert (run / "eval_random_10" / "table.md").is_file()

    sr = 22050
    t = np.arange(sr) / sr
    soundfile.write(tmp_path / "a3.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t)).astype(np.float32), sr)
    out = _cli(["match", str(tmp_path / "a3.wav"), "--synth", "fm", "--method", "ppo", "--policy", str(run),
                "--budget", "5", "--backend", "numpy", "-o", str(tmp_path / "match")], mark)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "match" / "params.json").is_file()
    assert not _none_left(mark), "eval or match left processes running"


@pytest.mark.scsynth
def test_rllib_ctrl_c_stops_runners_and_their_scsynth(tmp_path):
    """Ctrl-C of the driver while two env runners render with scsynth NRT: the driver exits 130 within
    seconds and no Ray process, scsynth or jackd it started is left."""
    mark = uuid.uuid4().hex
    env = dict(os.environ, SYNTHENV_TEST_MARK=mark)
    env.pop("RAY_ADDRESS", None)
    args = ["train", "--engine", "rllib", "--backend", "nrt", "--timesteps", "10000000", "--num-env-runners", "2",
            "--envs-per-runner", "16", *TINY, "-o", str(tmp_path / "run")]  # fmt: skip

    def as_in_a_terminal():  # a background job of a non-interactive shell ignores SIGINT; a terminal's does not
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    log = open(tmp_path / "train.log", "w")  # a file, not a pipe nobody reads while the driver runs
    proc = subprocess.Popen([sys.executable, "-m", "synthenv.cli", *args], env=env, stdout=log, stderr=log,
                            start_new_session=True, preexec_fn=as_in_a_terminal)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not any("scsynth" in p for p in _marked(mark)):
            assert proc.poll() is None, (tmp_path / "train.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no scsynth started by the env runners within 90 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the driver's whole process group
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert not _none_left(mark), "Ctrl-C left processes running"
