"""Latency of one policy inference (batch 1) on one core: SB3 predict vs the exported TorchScript and ONNX files.

Usage::

    .venv/bin/python benchmarks/export_latency.py RUN_DIR [--n 5000]

Exports RUN_DIR's policy to both formats in a temporary folder, collects real observations from the
run's env, and times ``Policy.act(obs)`` (what ``policy_search`` calls once per step: normalisation,
inference, clipping) for each engine, plus the bare engine call. Threads: ``torch.set_num_threads(1)``,
onnxruntime ``intra_op_num_threads=1``. Prints p50 and p99 (and mean) in microseconds side by side, and
the largest action difference from SB3 on the observations used.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from synthenv.agents.export import env_observations, export_policy
from synthenv.agents.policy import load_policy


def time_calls(fn, obs: np.ndarray, n: int, warmup: int = 200) -> np.ndarray:
    """Seconds per call of ``fn(one observation)``, cycling through ``obs``."""
    for i in range(warmup):
        fn(obs[i % len(obs)])
    t = np.empty(n)
    for i in range(n):
        o = obs[i % len(obs)]
        t0 = time.perf_counter()
        fn(o)
        t[i] = time.perf_counter() - t0
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a run folder from synthenv train")
    ap.add_argument("--n", type=int, default=5000, help="timed calls per row (default 5000)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(1)

    sb3 = load_policy(args.run_dir)
    obs = env_observations(sb3.config["env"], 1000)
    with tempfile.TemporaryDirectory() as tmp:
        files = {fmt: Path(tmp) / f"policy{suffix}" for fmt, suffix in (("torchscript", ".pt"), ("onnx", ".onnx"))}
        for fmt, path in files.items():
            export_policy(args.run_dir, fmt, path)
        ts, ort = load_policy(files["torchscript"]), load_policy(files["onnx"])  # onnxruntime: 1 intra-op thread
        expected = np.stack([sb3.act(o)[0] for o in obs])
        rows = {
            "SB3 predict (Policy.act)": (sb3, None),
            "TorchScript (Policy.act)": (ts, None),
            "onnxruntime (Policy.act)": (ort, None),
            "TorchScript, bare module call": (ts, "bare"),
            "onnxruntime, bare session.run": (ort, "bare"),
        }
        results = []
        for name, (policy, bare) in rows.items():
            if bare:
                fn, data = _bare(policy), obs[:, None, :]
            else:
                fn, data = policy.act, obs
            t = time_calls(fn, data, args.n) * 1e6
            diff = float(np.max(np.abs(np.stack([policy.act(o)[0] for o in obs]) - expected)))
            p50, p99 = np.percentile(t, [50, 99])
            results.append({"engine": name, "p50_us": float(p50), "p99_us": float(p99), "mean_us": float(t.mean()),
                            "max_abs_diff_vs_sb3": diff})  # fmt: skip
    cfg = sb3.config
    arch = cfg.get("ppo", {}).get("policy_kwargs", {}).get("net_arch", "default")
    print(f"run {args.run_dir}: {cfg['env']['synth']}, observation [1, {obs.shape[1]}] -> action [1, "
          f"{expected.shape[1]}], net_arch {arch}; batch 1, one thread, {args.n} timed calls per row")  # fmt: skip
    print(f"{'engine':<32} {'p50 (us)':>9} {'p99 (us)':>9} {'mean (us)':>10} {'max |diff| vs SB3':>18}")
    for r in results:
        print(f"{r['engine']:<32} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f} {r['mean_us']:>10.1f} "
              f"{r['max_abs_diff_vs_sb3']:>18.1e}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _bare(policy):
    """The engine alone, on an already batched float32 observation ``[1, D]``."""
    model = policy.model
    if model.engine == "torchscript":
        module = model.runtime

        def run(o):
            with torch.inference_mode():
                return module(torch.from_numpy(o))

        return run
    sess = model.runtime
    return lambda o: sess.run(["action"], {"obs": o})


if __name__ == "__main__":
    main()
