"""The synth registry: every synth is one :class:`~synthenv.spec.SynthSpec`, found by name.

Add your own with :func:`register_synth` (and, for the scsynth backends, a SynthDef whose control
names equal the spec's parameter names).
"""

from __future__ import annotations

from synthenv.errors import UnknownSynthError
from synthenv.spec import SynthSpec

_REGISTRY: dict[str, SynthSpec] = {}


def register_synth(spec: SynthSpec, *, replace: bool = False) -> SynthSpec:
    """Register ``spec`` under ``spec.name``. Re-registering the same spec is a no-op; a different
    spec under a taken name needs ``replace=True``."""
    old = _REGISTRY.get(spec.name)
    if old is not None and old is not spec and not replace:
        raise ValueError(f"a synth named {spec.name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[spec.name] = spec
    return spec


def get_synth(name: str | SynthSpec) -> SynthSpec:
    """The spec registered as ``name`` (a spec passes through)."""
    if isinstance(name, SynthSpec):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownSynthError(f"unknown synth {name!r}; available synths: {', '.join(available_synths())}") from None


def available_synths() -> list[str]:
    """Names of the registered synths, in registration order."""
    return list(_REGISTRY)


#: the synths that ship with synthenv, in registration order (a fresh process knows exactly these)
BUILTIN_SYNTHS = ("fm", "subtractive", "additive", "voice")


def _register_builtins() -> None:
    import importlib

    for name in BUILTIN_SYNTHS:
        register_synth(importlib.import_module(f"synthenv.synths.{name}").SPEC)


_register_builtins()
