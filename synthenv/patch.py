"""Pasteable SuperCollider patches: a matched synth as a ``.scd`` file that runs as it stands.

:func:`patch_scd` writes the synth's SynthDef source (shipped in the package for the built-in synths,
or a custom synth's own ``.scd``) and a ``Synth(...)`` line with the matched values::

    (
    ~synthenv_synthdef = SynthDef(\\synthenv_fm, { ... });
    ~synthenv_params = [\\freq, 196.0, \\ratio, 2.0, ...];
    if(s.serverRunning) {
        fork {
            ~synthenv_synthdef.add;
            s.sync;
            ~synthenv_synth = Synth(\\synthenv_fm, ~synthenv_params);
        };
    } {
        "boot the server first (s.boot), then evaluate this block again".warn;
    };
    )

Evaluated in a fresh sclang session with a booted server (the whole block at once), it adds the
SynthDef, waits for the server to have it, and plays the match once; without a booted server it says
so (and leaves ``~synthenv_synthdef`` and ``~synthenv_params`` defined).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from synthenv.errors import SynthenvError
from synthenv.spec import SynthSpec
from synthenv.supercollider import PACKAGE_SYNTHDEFS


def synthdef_source(spec: SynthSpec) -> str:
    """The SuperCollider source of a synth's SynthDef: an expression that evaluates to the SynthDef."""
    if spec.synthdef_path:
        path = Path(spec.synthdef_path)
        if path.suffix != ".scd":
            raise SynthenvError(f"synth {spec.name!r} has a compiled SynthDef only ({path}): no source to write")
    else:
        path = PACKAGE_SYNTHDEFS / f"{spec.synthdef}.scd"
    if not path.is_file():
        raise SynthenvError(f"the SynthDef source of {spec.name!r} is missing: {path}")
    source = path.read_text().strip()
    return source[:-1].rstrip() if source.endswith(";") else source


def sc_number(value: float) -> str:
    """A float as a SuperCollider literal (decimal notation, always with a point)."""
    v = float(value)
    if not math.isfinite(v):
        raise SynthenvError(f"a parameter value must be finite, got {value!r}")
    text = repr(v)
    if "e" in text or "E" in text:  # sclang reads 1e-05 as well, but decimal is clearer to a reader
        text = f"{v:.12f}".rstrip("0")
        text = text + "0" if text.endswith(".") else text
    return text


def sc_params(spec: SynthSpec, params: Mapping[str, float]) -> str:
    """``[\\name, value, ...]`` in the spec's parameter order (the flat array ``Synth`` takes)."""
    unknown = sorted(set(params) - set(spec.names))
    if unknown:
        raise SynthenvError(f"unknown parameter(s) {', '.join(unknown)} for {spec.name!r}")
    return "[" + ", ".join(f"\\{n}, {sc_number(params[n])}" for n in spec.names if n in params) + "]"


def patch_scd(spec: SynthSpec, params: Mapping[str, float], comment: str = "") -> str:
    """A ``.scd`` patch that adds ``spec``'s SynthDef and plays it once with ``params`` (physical units)."""
    lines = synthdef_source(spec).splitlines()
    notes = [line for line in lines if line.startswith("//")]  # the source's leading comment lines
    code = "\n".join(lines[len(notes) :] if lines[: len(notes)] == notes else lines)
    header = "".join(f"// {line}\n" for line in comment.splitlines()) if comment else ""
    return (
        f"{header}// Evaluate the whole block (between the parentheses) in sclang with a booted server (s.boot):\n"
        "// it adds the SynthDef and plays the matched sound once.\n"
        + "".join(f"{line}\n" for line in notes)
        + "(\n"
        f"~synthenv_synthdef = {code};\n"
        f"~synthenv_params = {sc_params(spec, params)};\n"
        "if(s.serverRunning) {\n"
        "    fork {\n"
        "        ~synthenv_synthdef.add;\n"
        "        s.sync;\n"
        f"        ~synthenv_synth = Synth(\\{spec.synthdef}, ~synthenv_params);\n"
        "    };\n"
        "} {\n"
        '    "boot the server first (s.boot), then evaluate this block again".warn;\n'
        "};\n"
        ")\n"
    )
