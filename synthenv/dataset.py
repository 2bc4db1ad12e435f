"""Datasets for inverse models: random parameter sets of a synth, their features and (optionally)
their audio, written as Parquet shards that load without synthenv.

Layout of a dataset folder ``DIR``::

    DIR/manifest.json              what the rows are: synth and full spec, backend, sample rate,
                                   duration, feature settings, seed, sampling, columns, shard list
    DIR/shards/shard-00000.parquet rows [0, R), one row group, zstd, floats byte-stream-split
    DIR/shards/shard-00001.parquet rows [R, 2R) ...

``pyarrow.parquet.read_table("DIR/shards")`` reads every shard in row order (shard files sort by
name; temporary files start with a dot and are skipped). Columns (``P`` parameters, ``T`` frames):

* ``row`` int64: the global row index ``i``.
* ``params`` fixed_size_list<float64>[P]: physical params (units of the spec), spec order.
* ``params_norm`` fixed_size_list<float32>[P]: the same params normalised to [0, 1].
* ``logmel`` fixed_size_list<float16>[T * 64]: the log-mel frames ``[T, 64]`` (dB) that
  :func:`synthenv.features.analyze` gives, flattened row-major.
* ``summary`` fixed_size_list<float32>[104]: the env's summary vector (observation half).
* ``audio`` fixed_size_list<float16>[N] (only with ``audio=True``): the backend's output as
  rendered, before the loudness normalisation of the features.

Reproducible: row ``i`` of seed ``K`` is row ``i % RNG_BLOCK`` of
``numpy.random.default_rng([K, i // RNG_BLOCK]).random((RNG_BLOCK, P))`` (uniform in normalised
[0, 1], mapped through the spec's scales), so it does not depend on the shard size or on how often
the run was interrupted. Resumable: a shard is written to a temporary name, flushed and renamed,
then the manifest (also replaced atomically) lists it with its size and SHA-256; a re-run keeps
the listed shards and renders the rest. A folder holding another dataset is refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from synthenv.errors import BackendError, ConfigError
from synthenv.progress import progress_bar
from synthenv.spec import SynthSpec

FORMAT = "synthenv-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
LOCK = ".lock"
#: rows drawn per RNG stream: row i comes from stream (seed, i // RNG_BLOCK)
RNG_BLOCK = 1024
DEFAULT_ROWS_PER_SHARD = 4096
#: rows rendered and analysed at once (memory: the power spectrogram of 512 1-s sounds is ~90 MB)
RENDER_BATCH = 512
DATASET_BACKENDS = ("numpy", "nrt")


def shard_file(k: int) -> str:
    """Path of shard ``k`` relative to the dataset folder."""
    return f"{SHARD_DIR}/shard-{k:05d}.parquet"


def random_rows(spec: SynthSpec, seed: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[start, stop)`` of seed ``seed``: normalised float64 ``[n, P]`` uniform in [0, 1) and
    the physical params float64 ``[n, P]`` (the spec's scales: ``exp`` ones are log-uniform)."""
    if stop <= start:
        return np.empty((0, spec.n_params)), np.empty((0, spec.n_params))
    first, last = start // RNG_BLOCK, (stop - 1) // RNG_BLOCK
    blocks = [np.random.default_rng([seed, b]).random((RNG_BLOCK, spec.n_params)) for b in range(first, last + 1)]
    x = np.concatenate(blocks)[start - first * RNG_BLOCK : stop - first * RNG_BLOCK]
    return x, spec.denormalize(x)


def spec_dict(spec: SynthSpec) -> dict:
    """The full spec as JSON-able data: names, ranges, scales, defaults, units, docs."""
    return {
        "name": spec.name,
        "description": spec.description,
        "synthdef": spec.synthdef,
        "params": [
            {"name": p.name, "low": p.low, "high": p.high, "default": p.default, "scale": p.scale, "unit": p.unit,
             "doc": p.doc}
            for p in spec.params
        ],
    }  # fmt: skip


def feature_settings(sample_rate: int, n_samples: int) -> dict:
    """What the stored features are, in numbers (from :mod:`synthenv.features`)."""
    from synthenv import features as F

    return {
        "extractor": "synthenv.features.analyze (the env's Python extractor on the rendered audio)",
        "loudness_normalization": f"each sound scaled to RMS {F.TARGET_RMS} (-20 dBFS) first; silent ones stay silent",
        "n_fft": F.N_FFT,
        "hop": F.HOP,
        "window": "periodic Hann, frames centred (n_fft // 2 zeros padded at both ends)",
        "power": "|X|^2 / (sum(window) / 2)^2: a full-scale sine peaks at 0 dB",
        "n_mels": F.N_MELS,
        "mel": "librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, norm=None): Slaney scale, peak-1 triangles",
        "floor_db": F.FLOOR_DB,
        "n_frames": 1 + n_samples // F.HOP,
        "summary": {
            "size": F.summary_size("audio"),
            "definition": f"{F.N_MFCC} MFCCs (orthonormal DCT-II of the log-mel), c0 -> (c0/sqrt({F.N_MELS}) + "
            f"{F.C0_OFFSET}) / {F.C0_SCALE}, others / {F.CK_SCALE}, averaged over {F.N_SEGMENTS} equal time "
            f"segments (segment-major), clipped to +-{F.SUMMARY_CLIP}",
            "n_mfcc": F.N_MFCC,
            "n_segments": F.N_SEGMENTS,
        },
    }


def _columns(spec: SynthSpec, n_frames: int, n_mels: int, summary: int, n_samples: int, audio: bool) -> dict:
    names = spec.names
    cols = {
        "row": {"dtype": "int64", "shape": [], "description": "global row index i; its params depend on seed and i"},
        "params": {"dtype": "float64", "shape": [len(names)], "names": names,
                   "description": "physical params in the spec's units, spec order"},
        "params_norm": {"dtype": "float32", "shape": [len(names)], "names": names,
                        "description": "params normalised to [0, 1] by the spec's scales (the inverse model's target)"},
        "logmel": {"dtype": "float16", "shape": [n_frames, n_mels],
                   "description": "log-mel frames in dB, flattened row-major in the column; float16 rounding is at "
                   "most 0.031 dB (half a float16 step at 64-128 dB; each shard records its measured maximum)"},
        "summary": {"dtype": "float32", "shape": [summary], "description": "the env's summary vector"},
    }  # fmt: skip
    if audio:
        cols["audio"] = {
            "dtype": "float16",
            "shape": [n_samples],
            "description": "the backend's output as rendered (before loudness normalisation); float16: relative "
            "rounding <= 2^-11 (about -66 dB) above 6.1e-5, absolute <= 3e-8 below",
        }
    return cols


def dataset_identity(
    spec: SynthSpec, n: int, *, backend: str, seed: int, audio: bool, rows_per_shard: int, sample_rate: int,
    duration: float,
) -> dict:  # fmt: skip
    """Everything that defines a dataset's rows and layout: two runs with equal identities write the same data."""
    import synthenv
    from synthenv import features as F

    n_samples = int(round(sample_rate * duration))
    feats = feature_settings(sample_rate, n_samples)
    if "freq" in spec.names:
        p = spec.params[spec.index("freq")]
        pitch = (
            f"random: freq drawn like every parameter, uniform in normalised [0, 1] over its range "
            f"[{p.low:g}, {p.high:g}] {p.unit}, {'log-uniform (exp scale)' if p.scale == 'exp' else 'uniform'}"
        ).rstrip()
    else:
        pitch = "the synth has no freq parameter"
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "synthenv_version": synthenv.__version__,
        "synth": spec.name,
        "spec": spec_dict(spec),
        "param_names": spec.names,
        "backend": backend,
        "sample_rate": int(sample_rate),
        "duration": float(duration),
        "n_samples": n_samples,
        "features": feats,
        "seed": int(seed),
        "sampling": {
            "params": "every parameter uniform in normalised [0, 1), mapped to physical units by its scale",
            "pitch": pitch,
            "rng": f"row i = row i % {RNG_BLOCK} of numpy.random.default_rng([seed, i // {RNG_BLOCK}])"
            f".random(({RNG_BLOCK}, {spec.n_params}))",
            "rng_block": RNG_BLOCK,
        },
        "n_rows": int(n),
        "rows_per_shard": int(rows_per_shard),
        "n_shards": -(-int(n) // int(rows_per_shard)),
        "audio": bool(audio),
        "columns": _columns(spec, feats["n_frames"], F.N_MELS, feats["summary"]["size"], n_samples, audio),
        "storage": "Parquet (zstd, floats byte-stream-split, one row group per shard), fixed-size list columns",
    }


def _check_args(synth, n, backend, seed, rows_per_shard) -> SynthSpec:
    from synthenv.backends import available_backends
    from synthenv.synths import get_synth

    spec = get_synth(synth)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"n must be a whole number of rows >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    if isinstance(rows_per_shard, bool) or not isinstance(rows_per_shard, int | np.integer) or rows_per_shard < 1:
        raise ConfigError(f"rows_per_shard must be a whole number >= 1, got {rows_per_shard!r}")
    if backend not in DATASET_BACKENDS:
        if backend in available_backends():
            raise BackendError(
                f"backend {backend!r} cannot write datasets (it renders in real time and gives server features "
                f"only); use {' or '.join(DATASET_BACKENDS)}"
            )
        raise BackendError(f"unknown backend {backend!r}; datasets are rendered by {' or '.join(DATASET_BACKENDS)}")
    return spec


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted((set(old) | set(new)) - {"shards", "complete"})
    return [k for k in keys if old.get(k) != new.get(k)]


def _ours(entry: Path) -> bool:
    """A file a dataset write leaves before its first manifest: the lock, the (empty) shard folder."""
    if entry.name == LOCK:
        return True
    return entry.name == SHARD_DIR and entry.is_dir() and all(e.name.startswith(".") for e in entry.iterdir())


def _read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a readable JSON manifest ({exc}); refusing to write into {out}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a synthenv dataset manifest; refusing to write into {out}")
    return data


def _check_folder(out: Path, identity: dict) -> dict | None:
    """The existing manifest when ``out`` holds this same dataset, None for a new or empty folder;
    a :class:`ConfigError` for anything else."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    if not out.exists():
        return None
    old = _read_manifest(out)
    if old is None:
        if not all(_ours(e) for e in out.iterdir()):
            raise ConfigError(f"output folder {out} is not empty and holds no {MANIFEST}: choose a new or empty folder")
        return None
    diff = _differences(old, identity)
    if diff:
        derived = {"n_shards", "n_samples", "param_names", "columns", "sampling"}  # follow from the others
        diff = [k for k in diff if k not in derived] or diff
        short = [k for k in diff if not isinstance(identity.get(k), dict | list)]
        detail = ", ".join(f"{k} {old.get(k)!r} here vs {identity.get(k)!r} asked" for k in short)
        raise ConfigError(
            f"output folder {out} holds a different dataset (its manifest differs in: {', '.join(diff)}"
            f"{'; ' + detail if detail else ''}); refusing to mix: choose another folder, or repeat its own "
            "arguments to resume it"
        )
    return old


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fixed_list(pa, values: np.ndarray):
    """``[B, ...]`` -> a fixed_size_list array of ``prod(...)`` values per row."""
    flat = np.ascontiguousarray(values).reshape(values.shape[0], -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def render_rows(
    spec: SynthSpec,
    backend,
    seed: int,
    start: int,
    stop: int,
    audio: bool,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Render and analyse rows ``[start, stop)``: the columns as numpy arrays (logmel float32 here;
    :func:`write_dataset` stores it as float16). ``on_batch(rows)`` follows each rendered batch."""
    from synthenv.features import analyze

    x, params = random_rows(spec, seed, start, stop)
    logmel, summary, sound = [], [], []
    for a in range(0, stop - start, RENDER_BATCH):
        b = min(a + RENDER_BATCH, stop - start)
        rendered = backend.render(spec, params[a:b])
        if rendered.audio is None:
            raise BackendError(f"the {backend.name} backend returned no audio")
        analysis = analyze(rendered.audio, backend.sample_rate)
        logmel.append(analysis.logmel)
        summary.append(analysis.summary)
        if audio:
            sound.append(rendered.audio)
        if on_batch is not None:
            on_batch(b - a)
    out = {
        "row": np.arange(start, stop, dtype=np.int64),
        "params": params,
        "params_norm": x.astype(np.float32),
        "logmel": np.concatenate(logmel),
        "summary": np.concatenate(summary).astype(np.float32),
    }
    if audio:
        out["audio"] = np.concatenate(sound)
    return out


def _write_shard(out: Path, k: int, start: int, cols: dict[str, np.ndarray], identity_json: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    logmel16 = cols["logmel"].astype(np.float16)
    err = float(np.max(np.abs(logmel16.astype(np.float32) - cols["logmel"]))) if len(logmel16) else 0.0
    arrays = {
        "row": pa.array(cols["row"]),
        "params": _fixed_list(pa, cols["params"].astype(np.float64)),
        "params_norm": _fixed_list(pa, cols["params_norm"]),
        "logmel": _fixed_list(pa, logmel16),
        "summary": _fixed_list(pa, cols["summary"]),
    }
    if "audio" in cols:
        arrays["audio"] = _fixed_list(pa, cols["audio"].astype(np.float16))
    table = pa.table(arrays).replace_schema_metadata({"synthenv": identity_json})
    path = out / shard_file(k)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    floats = [c for c in arrays if c != "row"]
    pq.write_table(
        table, tmp, compression="zstd", use_dictionary=False, use_byte_stream_split=floats,
        row_group_size=max(len(table), 1),
    )  # fmt: skip
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    record = {
        "file": shard_file(k),
        "start": int(start),
        "stop": int(start + len(table)),
        "rows": len(table),
        "bytes": tmp.stat().st_size,
        "sha256": _sha256(tmp),
        "logmel_float16_max_error_db": err,
    }
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return record


def write_dataset(
    output: str | Path,
    synth: str | SynthSpec,
    n: int,
    *,
    backend: str = "numpy",
    seed: int = 0,
    audio: bool = False,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    sample_rate: int = 22050,
    duration: float = 1.0,
    progress: bool = True,
    on_shard: Callable[[dict], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Write (or resume) ``n`` random rows of ``synth`` into the folder ``output``; returns the manifest.

    Every argument is checked, and the folder too (empty, new, or the same dataset to resume),
    before anything is written: a bad one raises a :class:`~synthenv.errors.SynthenvError`.
    ``on_shard(record)`` is called after each shard is safely on disk and listed in the manifest.
    """
    from synthenv.backends import check_backend_args, make_backend

    log = log or (lambda msg: print(msg, file=sys.stderr))
    spec = _check_args(synth, n, backend, seed, rows_per_shard)
    check_backend_args(backend, sample_rate, duration)
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError("writing datasets needs pyarrow: pip install pyarrow") from None
    identity = dataset_identity(
        spec, int(n), backend=backend, seed=int(seed), audio=audio, rows_per_shard=int(rows_per_shard),
        sample_rate=int(sample_rate), duration=float(duration),
    )  # fmt: skip
    out = Path(output)
    _check_folder(out, identity)  # before the backend starts: a refused folder costs nothing
    be = make_backend(backend, sample_rate=int(sample_rate), duration=float(duration))
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / SHARD_DIR).mkdir(exist_ok=True)
        lock = open(out / LOCK, "a+")  # noqa: SIM115 (held until the end)
        try:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"another process is writing the dataset in {out}") from None
            return _write_locked(out, spec, be, identity, progress, on_shard, log)
        finally:
            lock.close()
    finally:
        be.close()


def _write_locked(out: Path, spec: SynthSpec, be, identity: dict, progress: bool, on_shard, log) -> dict:
    old = _check_folder(out, identity)  # again, under the lock
    for stale in (out / SHARD_DIR).glob(".shard-*.tmp-*"):
        stale.unlink(missing_ok=True)  # an interrupted shard write
    done: dict[int, dict] = {}
    for rec in (old or {}).get("shards", []):
        path = out / rec.get("file", "")
        k = rec.get("start", -1) // identity["rows_per_shard"]
        if rec.get("file") == shard_file(k) and path.is_file() and path.stat().st_size == rec.get("bytes"):
            done[k] = rec
    manifest = {**identity, "shards": [done[k] for k in sorted(done)], "complete": False}
    n, rows, n_shards = identity["n_rows"], identity["rows_per_shard"], identity["n_shards"]
    manifest["complete"] = len(done) == n_shards
    _write_atomic(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    if manifest["complete"]:
        log(f"{out}: complete ({n} rows in {n_shards} shards); nothing to do")
        return manifest
    if done:
        log(f"{out}: resuming, {len(done)} of {n_shards} shards already written")
    identity_json = json.dumps(identity, sort_keys=True)
    bar = progress_bar(n, f"{spec.name} via {be.name}", "row", progress, sum(r["rows"] for r in done.values()))
    try:
        for k in range(n_shards):
            if k in done:
                continue
            start, stop = k * rows, min(n, (k + 1) * rows)
            cols = render_rows(spec, be, identity["seed"], start, stop, identity["audio"], bar.update)
            done[k] = _write_shard(out, k, start, cols, identity_json)
            manifest["shards"] = [done[j] for j in sorted(done)]
            manifest["complete"] = len(done) == n_shards
            _write_atomic(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
            if on_shard is not None:
                on_shard(done[k])
    finally:
        bar.close()
    return manifest


def load(path: str | Path, columns: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read a whole dataset folder into numpy arrays with their manifest shapes (pyarrow and numpy
    only; the README shows the same in a few lines for code without synthenv)."""
    import pyarrow.parquet as pq

    folder = Path(path)
    manifest = json.loads((folder / MANIFEST).read_text())
    names = columns or list(manifest["columns"])
    tables = [pq.read_table(folder / rec["file"], columns=names) for rec in manifest["shards"]]
    out = {}
    for name in names:
        shape = manifest["columns"][name]["shape"]
        chunks = [t[name].combine_chunks() for t in tables]
        if shape:
            values = [c.flatten().to_numpy(zero_copy_only=False) for c in chunks]
        else:
            values = [c.to_numpy(zero_copy_only=False) for c in chunks]
        dtype = np.dtype(manifest["columns"][name]["dtype"])
        flat = np.concatenate(values) if values else np.empty(0, dtype)
        out[name] = flat.reshape(-1, *shape)
    return out
