"""synthenv: SuperCollider's scsynth as a Gymnasium environment for sound matching.

``import synthenv`` registers ``synthenv/SoundMatch-v0`` (idempotently) and needs neither torch
nor stable-baselines3.
"""

from __future__ import annotations

import gymnasium as gym

from synthenv.errors import BackendError, ConfigError, ParameterError, SynthenvError, TargetError, UnknownSynthError
from synthenv.rendering import render
from synthenv.spec import Param, SynthSpec
from synthenv.synths import available_synths, get_synth, register_synth

__version__ = "0.1.0"

ENV_ID = "synthenv/SoundMatch-v0"


def _register_envs() -> None:
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="synthenv.env:SoundMatchEnv",
            vector_entry_point="synthenv.vector:SoundMatchVectorEnv",
        )


_register_envs()

__all__ = [
    "ENV_ID",
    "BackendError",
    "ConfigError",
    "Param",
    "ParameterError",
    "SynthSpec",
    "SynthenvError",
    "TargetError",
    "UnknownSynthError",
    "available_synths",
    "get_synth",
    "register_synth",
    "render",
]
