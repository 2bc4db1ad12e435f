"""synthenv dataset: random (params, features[, audio]) rows in Parquet shards for inverse models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import needs_scsynth

from synthenv.backends import make_backend
from synthenv.cli import main
from synthenv.dataset import RNG_BLOCK, load, random_rows, write_dataset
from synthenv.errors import SynthenvError
from synthenv.features import analyze
from synthenv.synths import get_synth

COLUMNS = ("row", "params", "params_norm", "logmel", "summary")

# Reads a dataset folder with json, numpy and pyarrow only: importing synthenv is made impossible.
READER = r"""
import json, sys
sys.modules["synthenv"] = None  # any import of synthenv now fails
import numpy as np
import pyarrow.parquet as pq

folder, out = sys.argv[1], sys.argv[2]
manifest = json.load(open(f"{folder}/manifest.json"))
table = pq.read_table(f"{folder}/shards")  # every shard, in row order
arrays = {}
for name, col in manifest["columns"].items():
    column = table[name].combine_chunks()
    values = column.flatten().to_numpy() if col["shape"] else column.to_numpy()
    arrays[name] = values.reshape(-1, *col["shape"])
    assert arrays[name].dtype == np.dtype(col["dtype"]), (name, arrays[name].dtype)
np.savez(out, **arrays)
"""


def _read_plain(folder, tmp_path) -> dict[str, np.ndarray]:
    out = tmp_path / "read.npz"
    subprocess.run([sys.executable, "-I", "-c", READER, str(folder), str(out)], check=True)
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def _write(folder, n=40, **kwargs):
    kwargs.setdefault("rows_per_shard", 16)
    return write_dataset(folder, kwargs.pop("synth", "subtractive"), n, progress=False, log=lambda m: None, **kwargs)


def test_round_trip_read_without_synthenv_rerenders_to_the_stored_features(tmp_path):
    folder = tmp_path / "d"
    manifest = _write(folder, 40, audio=True, seed=3)
    assert manifest["complete"] and manifest["n_shards"] == 3
    assert [(r["start"], r["stop"]) for r in manifest["shards"]] == [(0, 16), (16, 32), (32, 40)]
    spec = get_synth("subtractive")
    assert manifest["spec"]["params"][0] == {
        "name": "freq", "low": 55.0, "high": 1760.0, "default": 220.0, "scale": "exp", "unit": "Hz",
        "doc": spec.params[0].doc,
    }  # fmt: skip
    assert manifest["param_names"] == spec.names and manifest["seed"] == 3 and manifest["backend"] == "numpy"
    assert {k: manifest["features"][k] for k in ("n_fft", "hop", "n_mels", "floor_db")} == {
        "n_fft": 1024, "hop": 256, "n_mels": 64, "floor_db": -100.0,
    }  # fmt: skip
    assert "log-uniform" in manifest["sampling"]["pitch"] and manifest["synthenv_version"]

    d = _read_plain(folder, tmp_path)
    n, p, t = 40, spec.n_params, 1 + 22050 // 256
    assert {k: (v.shape, v.dtype.name) for k, v in d.items()} == {
        "row": ((n,), "int64"),
        "params": ((n, p), "float64"),
        "params_norm": ((n, p), "float32"),
        "logmel": ((n, t, 64), "float16"),
        "summary": ((n, 104), "float32"),
        "audio": ((n, 22050), "float16"),
    }
    assert np.array_equal(d["row"], np.arange(n))
    assert np.all((d["params_norm"] >= 0) & (d["params_norm"] <= 1))
    np.testing.assert_allclose(d["params_norm"], spec.normalize(d["params"]), atol=1e-6)
    freq = d["params"][:, 0]
    assert np.all((freq >= 55) & (freq <= 1760)) and np.ptp(np.log(freq)) > 1.0  # pitch varies over the range

    # the stored params, rendered again, give the stored features (log-mel within float16 rounding)
    audio = make_backend("numpy").render(spec, d["params"]).audio
    fresh = analyze(audio, 22050)
    err = np.abs(d["logmel"].astype(np.float32) - fresh.logmel)
    assert err.max() <= 0.03125 + 1e-6, err.max()
    assert max(r["logmel_float16_max_error_db"] for r in manifest["shards"]) == pytest.approx(err.max())
    np.testing.assert_array_equal(d["summary"], fresh.summary)
    np.testing.assert_array_equal(d["audio"], audio.astype(np.float16))

    # synthenv's own loader gives the same arrays
    mine = load(folder)
    assert set(mine) == set(d) and all(np.array_equal(mine[k], d[k]) for k in d)


def test_rows_depend_on_seed_and_index_only(tmp_path):
    spec = get_synth("fm")
    x, phys = random_rows(spec, 7, 0, RNG_BLOCK + 50)
    for a, b in [(0, 10), (5, 40), (RNG_BLOCK - 3, RNG_BLOCK + 50), (RNG_BLOCK + 1, RNG_BLOCK + 2)]:
        xa, pa_ = random_rows(spec, 7, a, b)
        assert np.array_equal(xa, x[a:b]) and np.array_equal(pa_, phys[a:b])
    assert not np.allclose(random_rows(spec, 8, 0, 10)[0], x[:10])

    def made(name, n, **kwargs):
        _write(tmp_path / name, n, synth="fm", **kwargs)
        return load(tmp_path / name)

    a, b, c = made("a", 40, rows_per_shard=16), made("b", 40, rows_per_shard=7), made("c", 10, rows_per_shard=40)
    for k in COLUMNS:
        assert np.array_equal(a[k], b[k]), k
        assert np.array_equal(a[k][:10], c[k]), k
    other = made("e", 10, seed=1)
    assert not np.allclose(other["params"], c["params"])


def test_resume_after_an_interruption_gives_the_uninterrupted_dataset(tmp_path):
    full = _write(tmp_path / "full", 40, rows_per_shard=8)
    folder = tmp_path / "cut"

    def stop_after_two(record):
        if record["start"] == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _write(folder, 40, rows_per_shard=8, on_shard=stop_after_two)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert not manifest["complete"] and [r["start"] for r in manifest["shards"]] == [0, 8]
    # what a crash can leave: a half-written temp file, a renamed shard not yet in the manifest,
    # and (a damaged disk) a listed shard of the wrong size
    (folder / "shards" / ".shard-00002.parquet.tmp-99999").write_bytes(b"half a shard")
    (folder / "shards" / "shard-00002.parquet").write_bytes(b"not listed")
    with open(folder / "shards" / "shard-00001.parquet", "r+b") as f:
        f.truncate(100)
    done = []
    resumed = _write(folder, 40, rows_per_shard=8, on_shard=done.append)
    assert [r["start"] for r in done] == [8, 16, 24, 32]  # shard 0 kept, the rest rendered
    assert resumed["complete"]
    assert [(r["file"], r["start"], r["stop"], r["sha256"]) for r in resumed["shards"]] == [
        (r["file"], r["start"], r["stop"], r["sha256"]) for r in full["shards"]
    ]  # byte-for-byte the same shard files
    assert sorted(p.name for p in (folder / "shards").iterdir()) == [f"shard-0000{k}.parquet" for k in range(5)]
    a, b = load(tmp_path / "full"), load(folder)
    for k in COLUMNS:
        assert a[k].tobytes() == b[k].tobytes(), k
    again = []  # a complete dataset: nothing to do
    _write(folder, 40, rows_per_shard=8, on_shard=again.append)
    assert again == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"synth": "nope"}, "unknown synth 'nope'"),
        ({"backend": "foo"}, "unknown backend 'foo'"),
        ({"backend": "live"}, "cannot write datasets"),
        ({"n": 0}, "n must be a whole number of rows >= 1"),
        ({"n": -5}, "n must be a whole number of rows >= 1"),
        ({"seed": -1}, "seed must be"),
        ({"rows_per_shard": 0}, "rows_per_shard must be"),
        ({"duration": 0.0}, "duration must be"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(kwargs, message, tmp_path):
    folder = tmp_path / "d"
    args = {"synth": "fm", "n": 4, **kwargs}
    with pytest.raises(SynthenvError, match=message):
        write_dataset(folder, args.pop("synth"), args.pop("n"), progress=False, **args)
    assert not folder.exists()


def test_a_folder_of_another_dataset_or_other_files_is_refused(tmp_path):
    folder = tmp_path / "d"
    _write(folder, 8, synth="fm", rows_per_shard=4)
    before = sorted(p.name for p in (folder / "shards").iterdir())
    for kwargs, differs in [
        ({"seed": 1}, "seed"),
        ({"synth": "subtractive"}, "synth"),
        ({"audio": True}, "audio"),
        ({"rows_per_shard": 8}, "rows_per_shard"),
        ({"n": 9}, "n_rows"),
    ]:
        args = {"synth": "fm", "n": 8, "rows_per_shard": 4, **kwargs}
        with pytest.raises(SynthenvError, match=f"holds a different dataset .*{differs}"):
            _write(folder, args.pop("n"), **args)
    assert sorted(p.name for p in (folder / "shards").iterdir()) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SynthenvError, match="not empty and holds no manifest.json"):
        _write(other, 4)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SynthenvError, match="is not a folder"):
        _write(tmp_path / "file", 4)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(SynthenvError, match="not a readable JSON manifest"):
        _write(folder, 8, synth="fm", rows_per_shard=4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--synth", "nope", "--n", "4"], "unknown synth 'nope'"),
        (["--synth", "fm", "--n", "0"], "n must be a whole number of rows >= 1"),
        (["--synth", "fm", "--n", "4", "--backend", "jack"], "unknown backend 'jack'"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path, capsys):
    assert main(["dataset", *args, "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("synthenv dataset: error: ") and message in err
    assert not (tmp_path / "d").exists()


def test_cli_writes_and_resumes(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["dataset", "--synth", "voice", "--n", "12", "--rows-per-shard", "5", "--seed", "2", "-o", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    assert "12 rows of voice via numpy in 3 Parquet shards" in capsys.readouterr().out
    assert main(argv) == 0
    assert "nothing to do" in capsys.readouterr().err
    d = load(out)
    assert d["logmel"].shape == (12, 87, 64) and "audio" not in d


@pytest.mark.scsynth
@needs_scsynth
def test_a_tiny_nrt_dataset_matches_the_numpy_one(tmp_path):
    nrt = _write(tmp_path / "nrt", 6, backend="nrt", rows_per_shard=4)
    assert nrt["backend"] == "nrt" and nrt["complete"]
    _write(tmp_path / "np", 6, rows_per_shard=4)
    a, b = load(tmp_path / "nrt"), load(tmp_path / "np")
    assert a["logmel"].shape == (6, 87, 64) and a["logmel"].dtype == np.float16
    assert np.array_equal(a["params"], b["params"])  # same rows, another renderer
    diff = np.abs(a["logmel"].astype(np.float32) - b["logmel"].astype(np.float32)).mean()
    assert diff < 0.5, diff  # the surrogates' parity with scsynth (subtractive: 0.04 dB mean)
