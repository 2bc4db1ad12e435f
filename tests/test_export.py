"""Exported policies (ONNX, TorchScript): parity with the SB3 policy, embedded metadata, CLI errors, and
matching from the exported file alone, without stable-baselines3."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

pytest.importorskip("stable_baselines3", reason="training extra not installed (pip install 'synthenv[train]')")
pytest.importorskip("onnxruntime", reason="training extra not installed (pip install 'synthenv[train]')")
pytest.importorskip("onnx", reason="training extra not installed (pip install 'synthenv[train]')")

from synthenv.agents.export import ExportedModel  # noqa: E402
from synthenv.agents.policy import load_policy  # noqa: E402

TINY = ["n_envs=8", "ppo.n_steps=32", "ppo.batch_size=64", "ppo.n_epochs=2", "eval_targets=2", "eval_budget=5",
        "eval_every=256", "checkpoint_every=256"]  # fmt: skip
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "synthenv.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def train(run, *extra):
    r = cli("train", "--synth", "fm", "--backend", "numpy", "--timesteps", "512", "-o", str(run), "--no-progress",
            *extra, *[a for s in TINY for a in ("--set", s)])  # fmt: skip
    assert r.returncode == 0, r.stderr
    return run


def one_line_error(r, command="export"):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"synthenv {command}: error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny PPO run with the default network (two layers of 256) and observation normalisation."""
    return train(tmp_path_factory.mktemp("runs") / "fm")


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    files = {}
    for fmt, suffix in SUFFIX.items():
        files[fmt] = out / f"policy{suffix}"
        r = cli("export", str(run), "--format", fmt, "-o", str(files[fmt]))
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"wrote {files[fmt]}") and "[B, 5]" in r.stdout, r.stdout
    return files


@pytest.fixture(scope="module")
def observations(run):
    """1,000 raw observations of the run's own env, along episodes of random actions."""
    from synthenv.agents.export import env_observations

    return env_observations(json.loads((run / "config.json").read_text())["env"], 1000)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_action_equals_the_sb3_policy_on_1000_env_observations(run, exported, observations, fmt):
    sb3 = load_policy(run)
    assert sb3.obs_mean is not None  # the file must fold the normalisation in
    expected = np.stack([sb3.act(o)[0] for o in observations])
    model = ExportedModel(exported[fmt])
    assert model.engine == {"onnx": "onnxruntime", "torchscript": "torchscript"}[fmt]
    batched = model(observations)
    assert batched.dtype == np.float32 and batched.shape == expected.shape == (1000, 5)
    assert np.max(np.abs(batched - expected)) < 1e-5
    policy = load_policy(exported[fmt])  # the path policy_search takes: one observation at a time
    one_by_one = np.stack([policy.act(o)[0] for o in observations])
    assert np.max(np.abs(one_by_one - expected)) < 1e-5
    assert len(np.unique(expected.round(4), axis=0)) > 100  # the observations do move the policy


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_actions_are_clipped_like_predict(run, observations, tmp_path, fmt):
    """A policy whose raw means mostly lie outside [-1, 1]: the file clips them as SB3's predict does."""
    from stable_baselines3 import PPO

    shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints", "tb"))
    model = PPO.load(tmp_path / "run" / "model.zip", device="cpu")
    with __import__("torch").no_grad():
        model.policy.action_net.bias[:] = model.policy.action_net.bias + 1.0
    model.save(tmp_path / "run" / "model.zip")
    out = tmp_path / f"clipped{SUFFIX[fmt]}"
    assert cli("export", str(tmp_path / "run"), "-o", str(out)).returncode == 0  # format from the suffix
    sb3 = load_policy(tmp_path / "run")
    expected = np.stack([sb3.act(o)[0] for o in observations])
    assert np.mean(expected == 1.0) > 0.3  # clipping is exercised
    assert np.max(np.abs(ExportedModel(out)(observations) - expected)) < 1e-5


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_the_file_carries_what_a_user_needs(run, exported):
    import onnx
    import torch

    from synthenv.env import SoundMatchEnv

    config = json.loads((run / "config.json").read_text())
    env = SoundMatchEnv(**config["env"])
    env.close()
    props = {p.key: p.value for p in onnx.load(str(exported["onnx"])).metadata_props}
    extra = {"synthenv.json": ""}
    torch.jit.load(str(exported["torchscript"]), _extra_files=extra)
    for meta in (json.loads(props["synthenv"]), json.loads(extra["synthenv.json"])):
        assert meta["synth"] == "fm" and meta["backend"] == "numpy" and meta["features"] == env.features
        assert meta["env"] == config["env"] and meta["config"] == config
        assert meta["obs_size"] == env.observation_space.shape[0] and meta["action_size"] == env.action_space.shape[0]
        assert meta["param_names"] == env.search_names
        assert meta["obs_normalization"] == {"folded_in": True, "clip_obs": 10.0, "epsilon": 1e-8}
    graph = onnx.load(str(exported["onnx"]))
    assert graph.opset_import[0].version == 17
    assert [i.name for i in graph.graph.input] == ["obs"] and [o.name for o in graph.graph.output] == ["action"]


def test_bad_inputs_are_one_line_errors(run, tmp_path):
    missing = cli("export", str(tmp_path / "missing"), "-o", str(tmp_path / "p.onnx"))
    assert "is not a run folder" in one_line_error(missing)
    (tmp_path / "empty").mkdir()
    assert "no config.json" in one_line_error(cli("export", str(tmp_path / "empty")))
    assert "unknown export format 'tflite'" in one_line_error(cli("export", str(run), "--format", "tflite"))
    rec = train(tmp_path / "rec", "--recurrent", "--set", "ppo.policy_kwargs.net_arch=[32,32]")
    assert "recurrent (LSTM)" in one_line_error(cli("export", str(rec), "-o", str(tmp_path / "rec.onnx")))
    assert not (tmp_path / "rec.onnx").exists()
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    wav = tmp_path / "t.wav"
    soundfile.write(wav, np.sin(2 * np.pi * 220 * np.arange(22050) / 22050).astype(np.float32), 22050)
    r = cli("match", str(wav), "--method", "ppo", "--policy", str(bogus), "--backend", "numpy", "-o", str(tmp_path))
    assert "is not a synthenv exported policy" in one_line_error(r, "match")


NO_SB3 = """
import sys
sys.modules["stable_baselines3"] = None  # any import of it fails
sys.modules["sb3_contrib"] = None
from synthenv.cli import main
rc = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules)
sys.exit(rc)
"""


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_match_runs_from_the_exported_file_alone(exported, tmp_path, fmt):
    from synthenv.rendering import render

    wav = tmp_path / "target.wav"
    soundfile.write(wav, render("fm", {"ratio": 3.0, "index": 4.0}, backend="numpy"), 22050)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", NO_SB3, "match", str(wav), "--method", "ppo", "--policy",
                        str(exported[fmt]), "--backend", "numpy", "--budget", "5", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "ppo best logmel_l1 after 5 renders" in r.stdout
    assert ("torch imported: False" in r.stdout) == (fmt == "onnx")  # onnxruntime alone runs an .onnx file
    assert json.loads((out / "result.json").read_text())["renders"] == 5
    assert (out / "match.wav").is_file() and (out / "params.json").is_file()


def test_importing_the_exporter_imports_neither_torch_nor_onnx():
    heavy = ("torch", "onnx", "onnxruntime", "stable_baselines3")
    code = "import sys, synthenv.agents.export, synthenv.agents.policy; "
    code += f"print([m for m in {heavy} if m in sys.modules])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_serve_runs_a_ppo_match_from_the_exported_file(exported, tmp_path):
    """synthenv serve --policy FILE.onnx answers /synthenv/match ... ppo with the policy's parameters."""
    from test_serve import Client, start_server, stop_server

    import synthenv

    note = tmp_path / "note.wav"
    soundfile.write(note, synthenv.render("fm", {"freq": 330.0, "index": 3.0}), 22050)
    proc, port = start_server(tmp_path, "--backend", "numpy", "--policy", str(exported["onnx"]))
    try:
        c = Client(port)
        c.send("/synthenv/match", 4, str(note), "fm", 8, "ppo")
        msg, before = c.until("/synthenv/params", 4)
    finally:
        stop_server(proc)
    assert msg.params[1] == "fm" and msg.params[2::2] == synthenv.get_synth("fm").names
    assert [m.params[1] for m in before if m.address == "/synthenv/progress"][-1] == 8
