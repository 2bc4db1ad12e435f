"""``synthenv bench``: env-steps per second, side by side in one run.

For each backend (numpy, nrt) it measures, with 1 s sounds at 22,050 Hz and features included:

* ``single``: one :class:`SoundMatchEnv` with its default arguments stepping (for nrt this is the
  naive way: one scsynth process per step), reset when an episode ends;
* ``vector N``: :class:`SoundMatchVectorEnv` with N sub-envs and the env's default arguments (one
  backend call per step), over a whole episode (``max_steps`` steps, the autoreset step included);
* ``final N`` (largest N): the same with ``metrics="final"`` (every distance when an episode ends);
* ``raw N``: the backend's render of N param sets plus the feature extraction and distance, with
  no env around it — the floor the vector env is compared to (``overhead`` = vector / raw time).

Env rows are means over a whole episode (what training sees), raw rows medians over repeats; the
machine is shared and noisy, so compare rows of one run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from synthenv import distances
from synthenv.backends import make_backend
from synthenv.env import SoundMatchEnv
from synthenv.features import analyze
from synthenv.synths import get_synth
from synthenv.vector import SoundMatchVectorEnv

WARMUP = 3  # untimed calls before each row: the steady state is what training sees


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(WARMUP):  # JIT, caches, and the allocator: glibc raises its mmap threshold only after
        fn()  # big arrays were freed, so the first steps of a 256-env batch page-fault fresh memory
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _mean_time_per_step(step: Callable[[], object], n_steps: int) -> float:
    """Mean seconds per call over ``n_steps`` calls, after WARMUP untimed ones."""
    for _ in range(WARMUP):
        step()
    t = time.perf_counter()
    for _ in range(n_steps):
        step()
    return (time.perf_counter() - t) / n_steps


def bench(
    synth: str = "fm",
    backends: tuple[str, ...] = ("numpy", "nrt"),
    sizes: tuple[int, ...] = (16, 64, 256),
    repeats: int = 7,
    single_steps: int = 50,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the benchmark; returns ``{"rows": [...], "ratios": {...}, "machine": {...}}``."""
    rows: list[dict] = []

    def add(backend: str, mode: str, n: int, seconds_per_step: float) -> None:
        row = {"backend": backend, "mode": mode, "num_envs": n, "env_steps_per_s": n / seconds_per_step,
               "ms_per_env_step": 1000 * seconds_per_step / n}  # fmt: skip
        rows.append(row)
        log(f"  {backend:<6} {mode:<7} {n:>4}  {row['env_steps_per_s']:>9.0f} env-steps/s  "
            f"{row['ms_per_env_step']:>8.3f} ms/env-step")  # fmt: skip

    spec = get_synth(synth)
    log(f"synthenv bench: synth {synth}, 1 s at 22050 Hz, {os.cpu_count()} cores")
    for backend in backends:
        env = SoundMatchEnv(synth=synth, backend=backend)  # the defaults: what users run
        env.reset(seed=0)
        action = np.zeros(env.action_space.shape, np.float32)

        def single_step(env=env, a=action):
            *_, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()

        add(backend, "single", 1, _mean_time_per_step(single_step, single_steps))
        env.close()
        engine = make_backend(backend)
        rng = np.random.default_rng(0)
        for n in sizes:
            modes = [("vector", {})] + ([("final", {"metrics": "final"})] if n == max(sizes) else [])
            for mode, kwargs in modes:
                venv = SoundMatchVectorEnv(n, synth=synth, backend=backend, **kwargs)
                venv.reset(seed=0)
                actions = np.zeros(venv.action_space.shape, np.float32)
                steps = venv.core.max_steps  # one whole episode: every sub-env autoresets once
                add(backend, mode, n, _mean_time_per_step(lambda v=venv, a=actions: v.step(a), steps))
                venv.close()
            params = spec.denormalize(rng.random((n, spec.n_params)))
            target = analyze(engine.render(spec, params[:1]).audio, 22050)

            def raw(p=params, t=target, e=engine):
                an = analyze(e.render(spec, p).audio, 22050)
                return an.summary, distances.compute("logmel_l1", t, an)

            add(backend, "raw", n, _median_time(raw, repeats))
        engine.close()

    def rate(backend: str, mode: str, n: int) -> float:
        return next(
            r["env_steps_per_s"] for r in rows if (r["backend"], r["mode"], r["num_envs"]) == (backend, mode, n)
        )

    ratios: dict[str, float] = {}
    for backend in backends:
        for n in sizes:
            ratios[f"{backend} vector{n} / single"] = rate(backend, "vector", n) / rate(backend, "single", 1)
            ratios[f"{backend} overhead vector{n} / raw{n}"] = rate(backend, "raw", n) / rate(backend, "vector", n)
        n = max(sizes)
        ratios[f"{backend} final{n} / vector{n}"] = rate(backend, "final", n) / rate(backend, "vector", n)
    log("ratios:")
    for k, v in ratios.items():
        log(f"  {k:<34} {v:8.2f}")
    machine = {"cores": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
    return {"synth": synth, "rows": rows, "ratios": ratios, "machine": machine}


def write_json(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
