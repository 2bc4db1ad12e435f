"""Export a trained run's policy to one ONNX or TorchScript file, and run such a file without stable-baselines3.

The exported file maps a raw env observation ``float32 [B, D]`` to the deterministic action
``float32 [B, A]``: the run's observation normalisation (``VecNormalize``) is folded in before the
network, and the action is clipped to the action space after it, exactly as :meth:`Policy.act
<synthenv.agents.policy.Policy.act>` does. What a user needs to use the file alone (the env config,
sizes, the searchable parameter names) is embedded as JSON: ONNX ``metadata_props["synthenv"]``,
TorchScript extra file ``synthenv.json``.

torch and onnx are imported here lazily; running an ``.onnx`` file needs only onnxruntime.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from synthenv.errors import SynthenvError

#: format name -> file suffix
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17
METADATA_KEY = "synthenv"  # ONNX metadata_props key; TorchScript extra file METADATA_KEY + ".json"
INPUT_NAME, OUTPUT_NAME = "obs", "action"


def env_observations(env_kwargs: dict, n: int, seed: int = 0) -> np.ndarray:
    """``n`` raw observations ``float32 [n, D]`` of a ``SoundMatchEnv(**env_kwargs)`` along episodes of
    uniformly random actions: what a policy sees, for parity checks and latency measurements."""
    from synthenv.env import SoundMatchEnv

    env = SoundMatchEnv(**env_kwargs)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    try:
        while len(out) < n:
            out.append(obs)
            obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return np.stack(out).astype(np.float32)


def _format_for(fmt: str | None, output: Path | None) -> str:
    if fmt is None:
        by_suffix = {s: f for f, s in FORMATS.items()}
        if output is not None and output.suffix in by_suffix:
            return by_suffix[output.suffix]
        return "onnx"
    if fmt not in FORMATS:
        raise SynthenvError(f"unknown export format {fmt!r}: choose {' or '.join(FORMATS)}")
    return fmt


def export_policy(run_dir: str | Path, fmt: str | None = None, output: str | Path | None = None,
                  checkpoint: str | None = None, check: int = 256) -> dict:  # fmt: skip
    """Export the policy of the run folder ``run_dir`` (``config.json``, ``model.zip``,
    ``vecnormalize.pkl``) to ``output`` as ``fmt`` (``"onnx"``, opset 17, or ``"torchscript"``; by
    default from ``output``'s suffix, else onnx; ``output`` defaults to ``RUN_DIR/policy.onnx|.pt``).

    The written file is loaded back and compared with the SB3 policy on ``check`` random
    observations from the observation space. Returns the embedded metadata plus ``path`` and
    ``max_abs_diff``. Recurrent (LSTM) policies are refused: their state is not part of one call."""
    run = Path(run_dir)
    out = Path(output) if output is not None else None
    fmt = _format_for(fmt, out)
    if not run.is_dir():
        raise SynthenvError(f"{run} is not a run folder: export takes the folder `synthenv train -o` wrote")
    out = out if out is not None else run / f"policy{FORMATS[fmt]}"
    if not out.parent.is_dir():
        raise SynthenvError(f"output directory {out.parent} does not exist")
    from synthenv.agents.policy import load_policy, samples_actions

    cfg = run / "config.json"
    config = json.loads(cfg.read_text()) if cfg.is_file() else {}
    if config.get("engine", "sb3") != "sb3":
        raise SynthenvError(f"{run} was trained with {config['engine']}: export supports stable-baselines3 runs only")
    if config.get("algo") == "recurrent_ppo":  # refused before loading it
        raise SynthenvError(
            f"{run} holds a recurrent (LSTM) policy: export supports feed-forward PPO runs only (an LSTM's state "
            "would have to go in and out of every call); train one without --recurrent"
        )
    if samples_actions(config):
        raise SynthenvError(
            f"{run} was trained with step_from='best': its policy samples its moves from the best candidate so "
            "far, and an exported file gives only the mean action (which would repeat a rejected move); use the "
            "run folder itself (match, eval, serve and play take it)"
        )
    policy = load_policy(run, checkpoint)
    meta = _metadata(policy)
    try:
        import torch
    except ImportError:
        raise SynthenvError("export needs torch: pip install 'synthenv[train]'") from None
    module = _export_module(policy).eval()
    example = torch.zeros((1, meta["obs_size"]), dtype=torch.float32)
    if fmt == "onnx":
        _write_onnx(module, example, out, meta)
    else:
        with _quiet_jit(), torch.no_grad():
            traced = torch.jit.trace(module, example)
            torch.jit.save(traced, str(out), _extra_files={METADATA_KEY + ".json": json.dumps(meta)})
    diff = 0.0
    if check:
        space = policy.model.observation_space
        obs = np.random.default_rng(0).uniform(space.low, space.high, (check, *space.shape)).astype(np.float32)
        exported = ExportedModel(out)
        expected = np.stack([policy.act(o)[0] for o in obs])
        diff = float(np.max(np.abs(exported(obs) - expected)))
        if diff > 1e-4:
            raise SynthenvError(f"the exported {fmt} file {out} differs from the SB3 policy by {diff:.2g}: not trusted")
    return {**meta, "path": str(out), "format": fmt, "max_abs_diff": diff}


@contextmanager
def _quiet_jit():
    """torch 2.13 deprecates TorchScript (``torch.jit``) in favour of ``torch.export``; TorchScript files
    still load in torch and in C++ libtorch, so its deprecation notices are silenced here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.", DeprecationWarning)
        yield


def _metadata(policy) -> dict:
    """What a user of the exported file needs: env config, sizes, parameter names, action bounds."""
    import synthenv
    from synthenv.env import check_env_kwargs
    from synthenv.synths import get_synth

    config = policy.config
    env = check_env_kwargs(**config["env"])
    spec = get_synth(env["synth"])
    fixed_freq = env["pitch"] == "target" and "freq" in spec.names  # as SoundMatchEnv.search_index
    names = [n for n in spec.names if not (fixed_freq and n == "freq")]
    obs_space, act_space = policy.model.observation_space, policy.model.action_space
    if act_space.shape != (len(names),):
        raise SynthenvError(f"the policy has {act_space.shape} actions; {spec.name} searches {len(names)} parameters")
    return {
        "synthenv_version": synthenv.__version__,
        "algo": config.get("algo", "ppo"),
        "synth": spec.name,
        "backend": env["backend"],
        "features": env["features"],
        "distance": env["distance"],
        "env": config["env"],
        "config": config,
        "obs_size": int(obs_space.shape[0]),
        "action_size": int(act_space.shape[0]),
        "param_names": names,
        "action_low": act_space.low.astype(float).tolist(),
        "action_high": act_space.high.astype(float).tolist(),
        "obs_normalization": None
        if policy.obs_mean is None
        else {"folded_in": True, "clip_obs": policy.clip_obs, "epsilon": policy.epsilon},
        "input": f"{INPUT_NAME}: float32 [batch, obs_size], the raw env observation (normalisation is inside)",
        "output": f"{OUTPUT_NAME}: float32 [batch, action_size], the deterministic action, clipped to the action space",
    }


def _export_module(policy):
    """A torch module (torch is imported lazily): the SB3 actor with the observation normalisation
    before it and ``predict``'s clipping after it."""
    import torch
    from stable_baselines3.common.distributions import DiagGaussianDistribution, StateDependentNoiseDistribution
    from stable_baselines3.common.preprocessing import preprocess_obs

    sb3 = policy.model.policy
    if not isinstance(sb3.action_dist, DiagGaussianDistribution | StateDependentNoiseDistribution):
        raise SynthenvError(f"cannot export a policy with {type(sb3.action_dist).__name__} actions (Box actions only)")
    space = policy.model.action_space

    class ExportModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # only the actor's modules, so the file holds no value network
            self.features, self.actor = sb3.pi_features_extractor, sb3.mlp_extractor.policy_net
            self.action_net = sb3.action_net
            self.normalize = policy.obs_mean is not None
            if self.normalize:
                std = np.sqrt(policy.obs_var + np.float32(policy.epsilon)).astype(np.float32)  # as Policy.normalize
                self.register_buffer("mean", torch.as_tensor(policy.obs_mean, dtype=torch.float32))
                self.register_buffer("std", torch.as_tensor(std))
            self.clip_obs = float(policy.clip_obs)
            self.squash = bool(sb3.squash_output)
            self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            if self.normalize:
                obs = torch.clamp((obs - self.mean) / self.std, -self.clip_obs, self.clip_obs)
            features = self.features(preprocess_obs(obs, sb3.observation_space, sb3.normalize_images))
            action = self.action_net(self.actor(features))  # SB3's extract_features, forward_actor, action_net
            if self.squash:  # gSDE with squash_output: tanh, then predict's unscale_action
                return self.low + 0.5 * (torch.tanh(action) + 1.0) * (self.high - self.low)
            return torch.minimum(torch.maximum(action, self.low), self.high)  # predict's np.clip

    return ExportModule()


def _write_onnx(module, example, out: Path, meta: dict) -> None:
    import onnx
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        batch = {n: {0: "batch"} for n in (INPUT_NAME, OUTPUT_NAME)}
        torch.onnx.export(module, (example,), str(out), opset_version=OPSET, dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=batch)  # fmt: skip
    model = onnx.load(str(out))
    model.doc_string = f"synthenv policy for {meta['synth']}: {meta['input']} -> {meta['output']}"
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


class ExportedModel:
    """An exported policy file run by onnxruntime (``.onnx``) or TorchScript (``.pt``), without
    stable-baselines3. ``model(obs [B, D]) -> action [B, A]`` (float32); ``predict`` is SB3's
    signature, so :class:`~synthenv.agents.policy.Policy` uses it as it uses an SB3 model.
    ``metadata`` is the embedded JSON; ``runtime`` the onnxruntime session or the TorchScript module.
    ``threads``: onnxruntime's intra-op threads (1: a batch-1 MLP gains nothing from more)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        from gymnasium import spaces

        self.path = Path(path)
        if not self.path.is_file():
            raise SynthenvError(f"exported policy not found: {self.path}")
        if self.path.suffix == ".onnx":
            self.engine = "onnxruntime"
            self._run, self.metadata, self.runtime = _load_onnx(self.path, threads)
        elif self.path.suffix == ".pt":
            self.engine = "torchscript"
            self._run, self.metadata, self.runtime = _load_torchscript(self.path)
        else:
            raise SynthenvError(
                f"{self.path} is neither a run folder nor an exported policy (.onnx or .pt from `synthenv export`)"
            )
        m = self.metadata
        self.observation_space = spaces.Box(-np.inf, np.inf, (m["obs_size"],), np.float32)
        self.action_space = spaces.Box(np.float32(m["action_low"]), np.float32(m["action_high"]), dtype=np.float32)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.metadata["obs_size"]:
            raise SynthenvError(f"expected observations [batch, {self.metadata['obs_size']}], got {list(obs.shape)}")
        return self._run(obs)

    def predict(self, obs: np.ndarray, state=None, episode_start=None, deterministic: bool = True):
        """SB3's ``predict``: ``(actions [B, A], None)``; the exported action is always deterministic."""
        return self(obs), None


def _bad_file(path: Path, why: str) -> SynthenvError:
    return SynthenvError(f"{path} is not a synthenv exported policy ({why}); write one with `synthenv export RUN`")


def _load_onnx(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise SynthenvError("running an .onnx policy needs onnxruntime: pip install onnxruntime") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        raise _bad_file(path, f"onnxruntime cannot load it: {str(exc).splitlines()[0]}") from None
    meta = sess.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if meta is None:
        raise _bad_file(path, f"no {METADATA_KEY!r} metadata")
    return (lambda obs: sess.run([OUTPUT_NAME], {INPUT_NAME: obs})[0]), json.loads(meta), sess


def _load_torchscript(path: Path):
    try:
        import torch
    except ImportError:
        raise SynthenvError("running a .pt policy needs torch: pip install torch") from None
    extra = {METADATA_KEY + ".json": ""}
    try:
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError and others for files that are not TorchScript
        raise _bad_file(path, f"torch.jit.load cannot load it: {str(exc).splitlines()[0]}") from None
    if not extra[METADATA_KEY + ".json"]:
        raise _bad_file(path, f"no {METADATA_KEY}.json inside")
    module.eval()

    def run(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(obs)).numpy()

    return run, json.loads(extra[METADATA_KEY + ".json"]), module
