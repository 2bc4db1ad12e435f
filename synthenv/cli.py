"""The ``synthenv`` command. Each subcommand is a thin wrapper over a library function."""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from synthenv.errors import SynthenvError


def _parse_set(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SynthenvError(f"--set takes name=value, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise SynthenvError(f"--set {item!r}: {value!r} is not a number") from None
    return out


def cmd_render(args: argparse.Namespace) -> int:
    import soundfile

    from synthenv.rendering import render

    params = _parse_set(args.set or [])
    audio = render(args.synth, params, backend=args.backend, sample_rate=args.sample_rate, duration=args.duration)
    out = Path(args.output)
    if out.parent and not out.parent.exists():
        raise SynthenvError(f"output directory {out.parent} does not exist")
    soundfile.write(str(out), audio, args.sample_rate, subtype="FLOAT" if args.float else "PCM_16")
    peak = float(np.max(np.abs(audio)))
    print(
        f"wrote {out}: {args.synth} via {args.backend}, {audio.size / args.sample_rate:.3f} s at "
        f"{args.sample_rate} Hz, peak {20 * np.log10(max(peak, 1e-12)):.1f} dBFS"
    )
    return 0


def cmd_synths(args: argparse.Namespace) -> int:
    from synthenv.synths import available_synths, get_synth

    names = [args.name] if args.name else available_synths()
    for name in names:
        print(get_synth(name).describe())
        print()
    return 0


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "installed"))


TRAIN_HINT = "not installed (pip install 'synthenv[train]')"


def cmd_doctor(args: argparse.Namespace) -> int:
    import synthenv
    from synthenv.backends import DEFAULT_FEATURES, available_backends, make_backend
    from synthenv.synths import available_synths, get_synth

    print(f"synthenv {synthenv.__version__} on Python {sys.version.split()[0]}")
    print("python packages:")
    for mod in ("numpy", "scipy", "gymnasium", "librosa", "soundfile", "pythonosc", "numba", "pyarrow", "cma",
                "matplotlib"):  # fmt: skip
        print(f"  {mod:<18} {_version(mod) or 'MISSING (core dependency)'}")
    for mod in ("torch", "stable_baselines3", "sb3_contrib"):
        print(f"  {mod:<18} {_version(mod) or TRAIN_HINT}")
    print("programs:")
    for prog in ("scsynth", "sclang", "jackd"):
        print(f"  {prog:<18} {shutil.which(prog) or 'not found'}")
    try:
        from synthenv.supercollider import scsynth_version

        print(f"  scsynth version    {scsynth_version()}")
    except SynthenvError as exc:
        print(f"  scsynth version    unavailable: {exc}")
    print("backends:")
    ok = True
    for name in available_backends():
        try:
            server = DEFAULT_FEATURES[name] == "server"
            backend = make_backend(name, duration=0.5, **({"server_features": True} if server else {}))
            t = time.perf_counter()
            try:
                for synth in available_synths():
                    spec = get_synth(synth)
                    r = backend.render(spec, spec.defaults[None, :])
                    out = r.frames if server else r.audio
                    if not np.isfinite(out).all() or np.max(np.abs(out)) == 0:
                        raise SynthenvError(f"{synth}: test render is silent or not finite")
            finally:
                backend.close()
            what = "server features" if server else "audio"
            print(
                f"  {name:<18} ok ({len(available_synths())} synths test-rendered, {what}, in "
                f"{(time.perf_counter() - t) * 1000:.0f} ms)"
            )
        except Exception as exc:  # report every backend, whatever fails
            ok = False
            print(f"  {name:<18} FAILED: {exc}")
    print("inverse models (synthenv match starts from them):")
    from synthenv.inverse import InverseModel, shipped_model_path

    for synth in available_synths():
        path = shipped_model_path(synth)
        if path is None:
            print(f"  {synth:<18} none (matches start cold; train one with synthenv fit-inverse)")
            continue
        try:
            m = InverseModel.load(path)
            g = m.starts(np.full((1, m.meta["n_frames"], m.meta["n_mels"]), -40.0, np.float32))
            if not np.isfinite(g).all():
                raise SynthenvError("its guesses are not finite")
            print(f"  {synth:<18} ok ({path.stat().st_size / 1e6:.1f} MB, {g.shape[1]} starts per sound)")
        except SynthenvError as exc:
            ok = False
            print(f"  {synth:<18} FAILED: {exc}")
    return 0 if ok else 1


def cmd_play(args: argparse.Namespace) -> int:
    import json

    from synthenv.play import play, play_agent

    if args.policy:
        if not args.target:
            raise SynthenvError("--policy needs --target: the recording the agent should match")
        play_agent(args.policy, args.target, steps=args.steps, backend=args.backend, server=args.server,
                   jack=args.jack)  # fmt: skip
        return 0
    if not args.synth:
        raise SynthenvError("give --synth (with --set/--params), or --policy RUN_DIR and --target")
    params: dict[str, float] = {}
    if args.params:
        p = Path(args.params)
        if not p.is_file():
            raise SynthenvError(f"params file not found: {p}")
        try:
            params.update(json.loads(p.read_text()))
        except json.JSONDecodeError as exc:
            raise SynthenvError(f"{p} is not JSON ({exc}); expected an object name -> value") from None
    params.update(_parse_set(args.set or []))
    play(args.synth, params, target=args.target, server=args.server, jack=args.jack, duration=args.duration,
         repeat=args.repeat)  # fmt: skip
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from synthenv.bench import bench, write_json

    sizes = tuple(int(s) for s in args.sizes.split(","))
    result = bench(synth=args.synth, backends=tuple(args.backends.split(",")), sizes=sizes, repeats=args.repeats)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from synthenv.agents.train import make_config, train

    cfg = make_config(synth=args.synth, backend=args.backend, features=args.features, timesteps=args.timesteps,
                      seed=args.seed, n_envs=args.n_envs, hyperparams=args.hyperparams, overrides=args.set,
                      recurrent=args.recurrent, engine=args.engine, num_env_runners=args.num_env_runners,
                      envs_per_runner=args.envs_per_runner)  # fmt: skip
    train(cfg, args.output, resume=args.resume, progress_bar=not args.no_progress, address=args.ray_address)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from synthenv.agents.evaluate import evaluate

    evaluate(args.run_dir, targets=args.targets, n=args.n, budget=args.budget, backend=args.backend,
             reference_budget=args.reference_budget, out=args.output, seed=args.seed, examples=args.examples,
             progress=not args.no_progress, inverse_model=args.inverse_model, target_seed=args.target_seed,
             methods=tuple(args.methods.split(",")) if args.methods else None)  # fmt: skip
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from synthenv.agents.match import match

    match(args.target, synth=args.synth, method=args.method, budget=args.budget, policy=args.policy,
          backend=args.backend, out_dir=args.output, seed=args.seed, distance=args.distance, init=args.init,
          inverse_model=args.inverse_model)  # fmt: skip
    return 0


def cmd_fit_inverse(args: argparse.Namespace) -> int:
    from synthenv.inverse import fit

    meta = fit(args.data, args.output, epochs=args.epochs, hypotheses=args.hypotheses, hidden=args.hidden,
               seed=args.seed, progress=not args.no_progress)  # fmt: skip
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output} ({size / 1e6:.1f} MB): {meta['synth']} inverse model, {meta['hypotheses']} guesses "
          f"per sound; report in its header (synthenv.inverse.InverseModel.load(path).meta['report'])")  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from synthenv.agents.export import OPSET, export_policy

    r = export_policy(args.run_dir, fmt=args.format, output=args.output, checkpoint=args.checkpoint)
    what = f"onnx, opset {OPSET}" if r["format"] == "onnx" else "torchscript"
    print(f"wrote {r['path']} ({what}): observation [B, {r['obs_size']}] -> action [B, {r['action_size']}] "
          f"({r['synth']}: {', '.join(r['param_names'])}); max |difference| from the SB3 policy "
          f"{r['max_abs_diff']:.1e}")  # fmt: skip
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    from synthenv.serve import AgentServer

    server = AgentServer(port=args.port, policy=args.policy, backend=args.backend, workers=args.workers,
                         inverse_model=args.inverse_model)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *a: server.stop())
    print(f"synthenv serve: listening on 127.0.0.1:{server.port} (OSC over UDP; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.close()
    print("synthenv serve: stopped", flush=True)
    return 0


def default_sc_dir() -> Path | None:
    """The checkout's ``sc/`` folder, when synthenv runs from a source checkout."""
    sc = Path(__file__).resolve().parent.parent / "sc"
    return sc if sc.is_dir() else None


def cmd_dataset(args: argparse.Namespace) -> int:
    from synthenv.dataset import write_dataset

    manifest = write_dataset(args.output, args.synth, args.n, backend=args.backend, seed=args.seed, audio=args.audio,
                             rows_per_shard=args.rows_per_shard, sample_rate=args.sample_rate,
                             duration=args.duration, progress=not args.no_progress)  # fmt: skip
    size, path = sum(r["bytes"] for r in manifest["shards"]), Path(args.output) / "manifest.json"
    print(f"{args.output}: {manifest['n_rows']} rows of {manifest['synth']} via {manifest['backend']} in "
          f"{manifest['n_shards']} Parquet shards ({size / 1e6:.1f} MB), {path}")  # fmt: skip
    return 0


def cmd_build_synthdefs(args: argparse.Namespace) -> int:
    from synthenv.supercollider import PACKAGE_SYNTHDEFS, build_synthdefs

    source = Path(args.source) if args.source else default_sc_dir()
    if source is None:
        raise SynthenvError("no sc/ folder next to the package: pass --source DIR_OR_FILE.scd")
    files = sorted(source.glob("*.scd")) if source.is_dir() else [source]
    if not files:
        raise SynthenvError(f"no .scd files in {source}")
    out = Path(args.output) if args.output else PACKAGE_SYNTHDEFS
    for path in build_synthdefs(files, out):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from synthenv.backends import available_backends
    from synthenv.synths import available_synths

    parser = argparse.ArgumentParser(prog="synthenv", description="scsynth as a Gymnasium sound-matching environment")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "render",
        help="render one sound to a WAV file",
        description="Render one parameter set of a synth to a WAV file.",
    )
    p.add_argument("--synth", required=True, help=f"synth name ({', '.join(available_synths())})")
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="set a parameter in physical units (repeatable); others take defaults",
    )
    p.add_argument("--backend", default="numpy", help=f"backend ({', '.join(available_backends())}; default numpy)")
    p.add_argument("--sample-rate", type=int, default=22050, help="sample rate in Hz (default 22050)")
    p.add_argument("--duration", type=float, default=1.0, help="duration in seconds (default 1.0)")
    p.add_argument("--float", action="store_true", help="write 32-bit float samples instead of 16-bit PCM")
    p.add_argument("-o", "--output", required=True, help="output WAV path")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser(
        "synths",
        help="list synths and their parameters",
        description="List the registered synths with parameter ranges, defaults and units.",
    )
    p.add_argument("name", nargs="?", help="only this synth")
    p.set_defaults(func=cmd_synths)

    p = sub.add_parser(
        "doctor",
        help="show what is installed and which backends work",
        description="Show installed packages and programs, and test-render every synth on every backend.",
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "play",
        help="hear a target and a synth patch, or a trained agent matching a target, on a live scsynth",
        description="Play a target recording (optional), then a synth patch, on a real-time scsynth: through "
        "your running JACK server (your sound card), or on a scsynth you run (--server). With --policy RUN_DIR "
        "and --target, the trained agent searches for the target and you hear every candidate it tries.",
    )
    p.add_argument("--synth", help=f"synth name ({', '.join(available_synths())})")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a parameter value (repeatable)")
    p.add_argument("--params", help="a JSON file name -> value (as written by synthenv match)")
    p.add_argument("--target", help="an audio file to play first")
    p.add_argument("--server", help="HOST:PORT of a running scsynth (default: boot one)")
    p.add_argument("--jack", default="auto", choices=["auto", "dummy", "system"],
                   help="auto: use a running JACK server, else a silent dummy one (default)")  # fmt: skip
    p.add_argument("--duration", type=float, default=1.0, help="seconds per sound (default 1.0)")
    p.add_argument("--repeat", type=int, default=1, help="play the pair this many times")
    p.add_argument("--policy", metavar="RUN_DIR", help="a run folder from `synthenv train`: hear the agent search")
    p.add_argument("--steps", type=int, default=20, help="agent steps to play (with --policy; default 20)")
    p.add_argument("--backend", help="where the agent renders (with --policy; default: its training backend)")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser(
        "train",
        help="train a PPO agent (stable-baselines3) on the batched vector env",
        description="Train PPO (or RecurrentPPO) on SoundMatch-v0 with the batched vector env. Writes a run folder: "
        "config.json, model.zip, vecnormalize.pkl, checkpoints/, tb/ (TensorBoard), eval.csv, learning_curve.png, "
        "report.md. Hyperparameters: agents/hyperparams/ppo.yml keyed by <synth>-<backend>.",
    )
    p.add_argument("--synth", default="fm", help="synth name (default fm)")
    p.add_argument("--backend", default="numpy", help="numpy (default), nrt or live")
    p.add_argument("--features", help="audio or server (default: the backend's)")
    p.add_argument("--timesteps", type=int, help="total env steps (default from the hyperparameter file)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--n-envs", type=int, help="sub-envs in the vector env (default 64)")
    p.add_argument("--hyperparams", help="a YAML file keyed by env configuration (default agents/hyperparams/ppo.yml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. ppo.learning_rate=1e-4")
    p.add_argument("--recurrent", action="store_true", help="RecurrentPPO (sb3-contrib) with an LSTM policy")
    p.add_argument("--engine", choices=("sb3", "rllib"), default="sb3",
                   help="sb3 (stable-baselines3, default) or rllib (Ray RLlib: env runners on a Ray cluster; "
                   "pip install 'synthenv[rllib]')")  # fmt: skip
    p.add_argument("--num-env-runners", type=int,
                   help="rllib: env runner processes (default 1; 0 samples in the driver)")  # fmt: skip
    p.add_argument("--envs-per-runner", type=int,
                   help="rllib: batched envs per runner (default: --n-envs split over the runners)")  # fmt: skip
    p.add_argument("--ray-address", help="rllib: a running Ray cluster ('auto' for this machine's `ray start`; "
                   "default $RAY_ADDRESS, else a private Ray instance stopped at the end)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in -o from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, help="run folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval",
        help="compare a trained policy with search baselines at equal render budgets",
        description="For each target, the policy and the baselines (random policy, random search, hill climber, "
        "CMA-ES) get the same number of renders; CMA-ES with a large budget is the reference. Writes results.json, "
        "results.csv, table.md (mean, median, 95%% CI), example WAVs and spectrogram PNGs, and the learning curve.",
    )
    p.add_argument("run_dir", help="a run folder from synthenv train")
    p.add_argument("--targets", default="random", help="'random' (held-out random patches) or an audio file/folder")
    p.add_argument("--n", type=int, default=16, help="number of targets (default 16)")
    p.add_argument("--budget", type=int, default=50, help="renders per method and target (default 50)")
    p.add_argument("--reference-budget", type=int, default=1000, help="CMA-ES reference budget (0: none)")
    p.add_argument("--target-seed", type=int,
                   help="with --targets random: draw another held-out set (default: the one training evaluates on)")
    p.add_argument("--backend", help="render backend (default: the run's)")
    p.add_argument("--examples", type=int, default=3, help="targets with WAVs and PNGs written (default 3)")
    p.add_argument("--methods", help="comma-separated methods (default: all that apply): ppo, random_policy, random, "
                   "hillclimb, cmaes, cmaes_lm, inverse@1 (the inverse model's guess, one render), inverse (its starts "
                   "alone), inverse+random, inverse+hillclimb, inverse+cmaes, inverse+cmaes_lm, inverse+ppo")
    p.add_argument("--inverse-model", help="an inverse model .npz (synthenv fit-inverse) instead of the run's or the "
                   "shipped one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", help="output folder (default RUN_DIR/eval_<targets>_<budget>)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "match",
        help="match a recording with a synth",
        description="Search a synth's parameters for the closest match to TARGET (pitch estimated, loudness "
        "normalised, any common sample rate, mono or stereo). Writes OUT/match.wav, OUT/params.json, "
        "OUT/comparison.png and prints the distances.",
    )
    p.add_argument("target", help="an audio file")
    p.add_argument("--synth", default="auto", help="a synth name, or auto: probe every synth, refine the closest")
    p.add_argument("--method",
                   help="cmaes_lm, cmaes, random, hillclimb, ppo or inverse (default cmaes_lm: CMA-ES, then "
                   "Levenberg-Marquardt, started from the inverse model's starts where the synth has one); inverse: "
                   "the model's guesses alone")
    p.add_argument("--init", choices=["inverse", "cold"],
                   help="where the search starts: inverse (the model's first guesses, rendered first) or cold "
                   "(explore first). Default: inverse where the synth has a model, else cold (a --method ppo "
                   "policy: as it was trained)")
    p.add_argument("--inverse-model", help="an inverse model .npz from synthenv fit-inverse (default: the shipped one)")
    p.add_argument("--budget", type=int,
                   help="renders in all (default 200; 1 per synth for --method inverse); with --synth auto about a "
                   "quarter probes every synth first")
    p.add_argument("--distance", help="what the search minimises (default audible; see synthenv.distances)")
    p.add_argument("--policy", help="run folder of a trained policy, or a file from synthenv export (for --method ppo)")
    p.add_argument("--backend", default="nrt", help="nrt (default, scsynth) or numpy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="match", help="output folder (default ./match)")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser(
        "export",
        help="export a trained policy to one ONNX or TorchScript file",
        description="Write a run's policy as one file that maps a raw observation float32 [B, D] to the "
        "deterministic action float32 [B, A] (observation normalisation folded in, actions clipped), with the env "
        "config, sizes and parameter names embedded (ONNX metadata_props / TorchScript extra file synthenv.json "
        "under the key 'synthenv'). Runs without stable-baselines3: synthenv match --method ppo --policy FILE.",
    )
    p.add_argument("run_dir", help="a run folder from synthenv train")
    p.add_argument("--format", help="onnx (opset 17) or torchscript (default: from -o's suffix .onnx/.pt, else onnx)")
    p.add_argument("--checkpoint", help="a checkpoint .zip of the run instead of model.zip")
    p.add_argument("-o", "--output", help="output file (default RUN_DIR/policy.onnx or policy.pt)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "serve",
        help="an OSC agent server for SuperCollider: sclang asks it for matches",
        description="Listen for OSC on UDP 127.0.0.1:PORT: /synthenv/match id path synth budget [method] is answered "
        "with /synthenv/progress id renders best_distance while it works and /synthenv/params id synth name value "
        "... at the end; /synthenv/cancel id; /synthenv/synths. Replies go to the sender's address and port. The "
        "SynthEnv Quark (sc/SynthEnv) is its sclang client.",
    )
    p.add_argument("--port", type=int, default=57130, help="UDP port on 127.0.0.1 (default 57130)")
    p.add_argument("--policy", help="a run folder or exported policy for method ppo")
    p.add_argument("--backend", default="nrt", choices=["nrt", "numpy"], help="render backend (default nrt)")
    p.add_argument("--workers", type=int, default=2, help="matches run at once (default 2)")
    p.add_argument("--inverse-model", help="an inverse model .npz (synthenv fit-inverse) instead of the shipped one "
                   "for requests that name its synth")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "bench",
        help="measure env-steps/s of single and vector envs per backend",
        description="Env-steps per second (1 s sounds at 22050 Hz, features included) for a single env, the "
        "batched vector env and the raw batched render + features, per backend, side by side; with ratios.",
    )
    p.add_argument("--synth", default="fm")
    p.add_argument("--backends", default="numpy,nrt", help="comma-separated (default numpy,nrt)")
    p.add_argument("--sizes", default="16,64,256", help="vector env sizes (default 16,64,256)")
    p.add_argument("--repeats", type=int, default=7,
                   help="timed repeats per raw row (median reported); env rows average one whole episode")
    p.add_argument("--json", help="also write the table as JSON to this path")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "dataset",
        help="write random (params, features[, audio]) rows for inverse models as Parquet shards",
        description="Render N random parameter sets of a synth (every parameter uniform in [0, 1], pitch over the "
        "synth's freq range) and write their physical and normalised params, log-mel frames (float16), summary "
        "vectors and optionally audio (float16) as Parquet shards in OUT/shards/, with OUT/manifest.json (spec, "
        "backend, feature settings, seed, shard list). Row i of a seed is the same for any shard size; re-running "
        "the same command resumes an interrupted dataset; a folder holding another dataset is refused.",
    )
    p.add_argument("--synth", required=True, help=f"synth name ({', '.join(available_synths())})")
    p.add_argument("--n", type=int, required=True, help="number of rows")
    p.add_argument("--backend", default="numpy", help="numpy (default) or nrt (scsynth)")
    p.add_argument("--audio", action="store_true", help="also store the audio (float16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--rows-per-shard", type=int, default=4096, help="rows per Parquet shard (default 4096)")
    p.add_argument("--sample-rate", type=int, default=22050, help="sample rate in Hz (default 22050)")
    p.add_argument("--duration", type=float, default=1.0, help="seconds per sound (default 1.0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, help="dataset folder (new, empty, or this dataset to resume)")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser(
        "fit-inverse",
        help="train an inverse model (sound -> synth params) on a dataset from synthenv dataset",
        description="Train a network (torch) from a dataset's log-mel frames to K ranked guesses of the synth's "
        "normalised params with a multiple-choice loss (equivalent settings are not punished), save it as one .npz "
        "that predicts in numpy, and report its held-out parameter MAE and the log-mel distance of its rendered "
        "guesses. Use it with synthenv match --inverse-model, or SoundMatchEnv(init='inverse', inverse_model=...).",
    )
    p.add_argument("--data", required=True, help="a dataset folder from synthenv dataset")
    p.add_argument("--epochs", type=int, default=20, help="passes over the training rows (default 20)")
    p.add_argument("--hypotheses", type=int, default=8, help="guesses per sound, K (default 8)")
    p.add_argument("--hidden", type=int, default=512, help="width of the three hidden layers (default 512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    p.set_defaults(func=cmd_fit_inverse)

    p = sub.add_parser(
        "build-synthdefs",
        help="compile the SynthDefs in sc/ with sclang",
        description="Compile SuperCollider SynthDef sources (.scd, each evaluating to one SynthDef) with headless "
        "sclang into .scsyndef files; by default sc/*.scd into the package's synthdefs folder.",
    )
    p.add_argument("--source", help="a .scd file or a folder of them (default: the checkout's sc/)")
    p.add_argument("-o", "--output", help="output folder (default: synthenv/synthdefs inside the package)")
    p.set_defaults(func=cmd_build_synthdefs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SynthenvError as exc:
        print(f"synthenv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
