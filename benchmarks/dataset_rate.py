#!/usr/bin/env python
"""Rows per second of ``synthenv dataset`` and its size per million rows, per backend.

    .venv/bin/python benchmarks/dataset_rate.py [--synth subtractive] [--n-numpy 4096] [--n-nrt 1024]

For each backend (numpy, nrt) and without/with ``--audio``, writes one whole shard of N rows into
a temporary folder with :func:`synthenv.dataset.write_dataset` (render, features, float16
conversion, Parquet encoding with zstd, fsync, SHA-256, manifest: everything the command does) and
prints rows per second of wall time and the shard's bytes per row, extrapolated to a million rows.
A small dataset is written first so that numba's compilation and scsynth's first start are not
timed. Short runs on a shared machine move by 10-20%.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from synthenv.dataset import write_dataset


def measure(synth: str, backend: str, n: int, audio: bool, folder: Path) -> dict:
    write_dataset(folder / f"warm-{backend}-{audio}", synth, 64, backend=backend, audio=audio, progress=False,
                  log=lambda m: None)  # fmt: skip
    t = time.perf_counter()
    manifest = write_dataset(folder / f"{backend}-{audio}", synth, n, backend=backend, audio=audio,
                             rows_per_shard=n, progress=False, log=lambda m: None)  # fmt: skip
    seconds = time.perf_counter() - t
    size = sum(r["bytes"] for r in manifest["shards"])
    return {"backend": backend, "audio": audio, "rows": n, "seconds": seconds, "bytes_per_row": size / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synth", default="subtractive")
    ap.add_argument("--n-numpy", type=int, default=4096, help="rows timed on numpy (one shard)")
    ap.add_argument("--n-nrt", type=int, default=1024, help="rows timed on nrt (one shard; 0 skips nrt)")
    ap.add_argument("--no-audio", action="store_true", help="skip the --audio rows")
    args = ap.parse_args()
    runs = [("numpy", args.n_numpy)] + ([("nrt", args.n_nrt)] if args.n_nrt > 0 else [])
    print(f"synth {args.synth}, 1 s at 22050 Hz, one shard of N rows each\n")
    print("| backend | stored | N | rows/s | bytes/row | GB per million rows |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="synthenv-dataset-rate-") as tmp:
        for backend, n in runs:
            for audio in (False,) if args.no_audio else (False, True):
                r = measure(args.synth, backend, n, audio, Path(tmp))
                what = "params, log-mel, summary" + (", audio" if audio else "")
                print(f"| {backend} | {what} | {n} | {n / r['seconds']:,.0f} | {r['bytes_per_row']:,.0f} | "
                      f"{r['bytes_per_row'] * 1e6 / 1e9:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
