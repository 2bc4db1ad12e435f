"""SuperCollider tooling shared by the scsynth backends: finding the programs, compiling SynthDefs
with sclang, reading ``.scsyndef`` files, building OSC packets (python-osc), and checking the
analysis frames scsynth sends back.

Binaries are found on ``PATH`` or through ``SYNTHENV_SCSYNTH`` / ``SYNTHENV_SCLANG``.
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder

from synthenv.errors import BackendError
from synthenv.features import N_SERVER_FEATURES, SERVER_FEATURES
from synthenv.paths import private_dir
from synthenv.spec import SynthSpec

PACKAGE_SYNTHDEFS = Path(__file__).parent / "synthdefs"
ANALYSIS_SYNTHDEF = "synthenv_analysis"
PLAYER_SYNTHDEF = "synthenv_player"
SCLANG_TIMEOUT = 120.0


# -- programs -------------------------------------------------------------------------------------
def find_scsynth() -> str:
    """Path of the scsynth binary, or a :class:`BackendError` that says how to get one."""
    path = os.environ.get("SYNTHENV_SCSYNTH") or shutil.which("scsynth")
    if not path or not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise BackendError(
            "scsynth not found: install the Debian package supercollider-server "
            "(sudo apt-get install supercollider-server, or ./setup.sh) or set SYNTHENV_SCSYNTH to a scsynth binary"
            + (
                f" (SYNTHENV_SCSYNTH={os.environ['SYNTHENV_SCSYNTH']} is not an executable file)"
                if os.environ.get("SYNTHENV_SCSYNTH")
                else ""
            )
        )
    return path


def find_sclang() -> str:
    """Path of sclang (only needed to compile SynthDefs)."""
    path = os.environ.get("SYNTHENV_SCLANG") or shutil.which("sclang")
    if not path:
        raise BackendError(
            "sclang not found: compiling SynthDefs needs the Debian package supercollider-language "
            "(or set SYNTHENV_SCLANG to an sclang binary)"
        )
    return path


@functools.cache
def scsynth_version() -> str:
    """``scsynth -v``'s first line, e.g. ``scsynth 3.13.0 (...)``."""
    out = subprocess.run([find_scsynth(), "-v"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).strip().splitlines()[0]


# -- SynthDefs ------------------------------------------------------------------------------------
def sclang_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1")
    return env


def build_synthdefs(sources: list[Path], out_dir: Path, *, build_script: Path | None = None) -> list[Path]:
    """Compile ``.scd`` files (each evaluating to one SynthDef) with headless sclang into ``out_dir``.
    Returns the written ``.scsyndef`` paths. Raises :class:`BackendError` with sclang's output."""
    sources = [Path(s).resolve() for s in sources]
    for s in sources:
        if not s.is_file():
            raise BackendError(f"SynthDef source not found: {s}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    script = build_script or PACKAGE_SYNTHDEFS / "build.scd"
    before = {p: p.stat().st_mtime_ns for p in out_dir.glob("*.scsyndef")}
    with tempfile.TemporaryDirectory(prefix="synthenv-sclang-") as home:
        env = sclang_env()
        env["HOME"] = home  # sclang writes its config and class-library cache under HOME
        try:
            proc = subprocess.run(
                [find_sclang(), str(script), str(out_dir), *map(str, sources)],
                capture_output=True,
                text=True,
                timeout=SCLANG_TIMEOUT,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise BackendError(f"sclang did not finish compiling SynthDefs within {SCLANG_TIMEOUT:.0f} s") from None
    log = proc.stdout + proc.stderr
    written = [line.split("wrote ", 1)[1].strip() for line in log.splitlines() if "synthenv-build: wrote" in line]
    if proc.returncode != 0 or len(written) != len(sources) or "ERROR" in log:
        tail = "\n".join(log.strip().splitlines()[-15:])
        raise BackendError(f"sclang failed to compile SynthDefs (exit {proc.returncode}):\n{tail}")
    paths = [out_dir / f"{name}.scsyndef" for name in written]
    missing = [p for p in paths if not p.exists() or before.get(p) == p.stat().st_mtime_ns]
    if missing:
        raise BackendError(f"sclang reported success but did not write {', '.join(map(str, missing))}")
    return paths


@functools.cache
def _compiled_custom(source: Path, mtime_ns: int) -> bytes:
    cache = private_dir() / "synthdefs"  # not a shared /tmp path another user could plant a symlink at
    (path,) = build_synthdefs([source], cache)
    return path.read_bytes()


def synthdef_bytes(spec_or_name: SynthSpec | str) -> bytes:
    """The compiled SynthDef of a synth (or of ``"synthenv_analysis"``), as ``.scsyndef`` bytes.

    Built-in synths ship compiled inside the package. A spec with ``synthdef_path`` uses that file:
    a ``.scsyndef`` as is, a ``.scd`` compiled with sclang once per modification.
    """
    if isinstance(spec_or_name, SynthSpec) and spec_or_name.synthdef_path:
        src = Path(spec_or_name.synthdef_path)
        if not src.is_file():
            raise BackendError(f"synth {spec_or_name.name!r}: SynthDef file not found: {src}")
        data = (
            src.read_bytes() if src.suffix == ".scsyndef" else _compiled_custom(src.resolve(), src.stat().st_mtime_ns)
        )
    else:
        name = spec_or_name.synthdef if isinstance(spec_or_name, SynthSpec) else spec_or_name
        path = PACKAGE_SYNTHDEFS / f"{name}.scsyndef"
        if not path.is_file():
            raise BackendError(
                f"compiled SynthDef {path.name} is missing from the package; run `synthenv build-synthdefs` "
                "or give the spec a synthdef_path"
            )
        data = path.read_bytes()
    expected = spec_or_name.synthdef if isinstance(spec_or_name, SynthSpec) else spec_or_name
    names = [d.name for d in read_synthdefs(data)]
    if expected not in names:
        raise BackendError(f"the SynthDef file for {expected!r} defines {names} instead")
    return data


@dataclass(frozen=True)
class SynthDefInfo:
    name: str
    controls: dict[str, float]  # name -> default, in control order


def read_synthdefs(data: bytes) -> list[SynthDefInfo]:
    """Parse the header of a ``.scsyndef`` file (versions 1 and 2): each def's name and controls."""
    if data[:4] != b"SCgf":
        raise BackendError("not a SynthDef file (no SCgf header)")
    version = struct.unpack_from(">i", data, 4)[0]
    if version not in (1, 2):
        raise BackendError(f"unsupported SynthDef file version {version}")
    wide = version == 2
    pos = 8
    (n_defs,) = struct.unpack_from(">h", data, pos)
    pos += 2
    out = []

    def pstring() -> str:
        nonlocal pos
        n = data[pos]
        s = data[pos + 1 : pos + 1 + n].decode("ascii")
        pos += 1 + n
        return s

    def integer() -> int:
        nonlocal pos
        fmt = ">i" if wide else ">h"
        (v,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v

    for _ in range(n_defs):
        name = pstring()
        n_consts = integer()
        pos += 4 * n_consts
        n_params = integer()
        defaults = struct.unpack_from(f">{n_params}f", data, pos)
        pos += 4 * n_params
        n_names = integer()
        controls = {}
        for _ in range(n_names):
            cname = pstring()
            idx = integer()
            controls[cname] = float(defaults[idx])
        out.append(SynthDefInfo(name, controls))
        break  # the rest of the def (UGens, variants) is not needed; files hold one def each
    return out


# -- OSC packets ----------------------------------------------------------------------------------
def osc_message(address: str, *args: int | float | str | bytes) -> bytes:
    """An OSC message; ints as int32, floats as float32, str as string, bytes as blob."""
    builder = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bytes):
            builder.add_arg(a, OscMessageBuilder.ARG_TYPE_BLOB)
        elif isinstance(a, bool | int):
            builder.add_arg(int(a), OscMessageBuilder.ARG_TYPE_INT)
        elif isinstance(a, float):
            builder.add_arg(a, OscMessageBuilder.ARG_TYPE_FLOAT)
        else:
            builder.add_arg(str(a), OscMessageBuilder.ARG_TYPE_STRING)
    return builder.build().dgram


def osc_bundle(seconds: float, messages: list[bytes]) -> bytes:
    """An OSC bundle whose timetag counts ``seconds`` from 0 (the NRT score's clock, not 1900)."""
    whole = int(seconds)
    frac = min(int(round((seconds - whole) * 2**32)), 2**32 - 1)
    body = b"".join(struct.pack(">i", len(m)) + m for m in messages)
    return b"#bundle\0" + struct.pack(">II", whole, frac) + body


def nrt_score(bundles: list[tuple[float, list[bytes]]]) -> bytes:
    """An NRT command file: each bundle framed by its int32 big-endian length; times must not decrease."""
    times = [t for t, _ in bundles]
    if times != sorted(times):
        raise ValueError("NRT bundle times must not decrease")
    out = bytearray()
    for t, msgs in bundles:
        b = osc_bundle(t, msgs)
        out += struct.pack(">i", len(b)) + b
    return bytes(out)


# -- analysis frames ------------------------------------------------------------------------------
def check_server_frames(frames: np.ndarray, backend: str) -> np.ndarray:
    """Check raw analysis frames ``[B, T, 16]`` that scsynth produced (``backend``: "nrt" or "live"):
    every value must be finite. Returns ``frames``; raises :class:`BackendError` naming the rows."""
    f = np.asarray(frames)
    if f.ndim != 3 or f.shape[2] != N_SERVER_FEATURES:
        raise BackendError(f"scsynth ({backend}) analysis frames must be [B, T, {N_SERVER_FEATURES}], got {f.shape}")
    bad = ~np.isfinite(f)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=(1, 2)))
        b, t, k = np.argwhere(bad)[0]
        listed = ", ".join(map(str, rows[:10])) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        raise BackendError(
            f"scsynth ({backend} backend) produced non-finite analysis frames for candidate row(s) {listed} "
            f"of {f.shape[0]} (first: row {b}, frame {t}, {SERVER_FEATURES[k]} = {f[b, t, k]}): the synth's "
            "output drove the analysis UGens out of range; check those parameters and the SynthDef "
            "(e.g. a filter that blows up); frames with NaN or inf are never used"
        )
    return frames
