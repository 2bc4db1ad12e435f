import numpy as np
import pytest

import synthenv
from synthenv import ParameterError, UnknownSynthError, get_synth
from synthenv.spec import Param, SynthSpec


@pytest.mark.parametrize("name", ["fm", "subtractive", "additive"])
def test_normalize_roundtrip(name):
    spec = get_synth(name)
    x = np.random.default_rng(0).random((50, spec.n_params))
    phys = spec.denormalize(x)
    assert np.all(phys >= spec.low - 1e-9) and np.all(phys <= spec.high + 1e-9)
    np.testing.assert_allclose(spec.normalize(phys), x, atol=1e-9)


def test_exp_scale_midpoint_is_geometric_mean():
    spec = get_synth("fm")
    j = spec.index("freq")
    mid = spec.denormalize(np.full(spec.n_params, 0.5))[j]
    assert mid == pytest.approx(np.sqrt(55.0 * 1760.0))
    k = spec.index("index")  # lin
    assert spec.denormalize(np.full(spec.n_params, 0.5))[k] == pytest.approx(5.0)


def test_from_dicts_defaults_and_errors():
    spec = get_synth("fm")
    row = spec.from_dicts({"freq": 220})
    assert row.shape == (1, spec.n_params)
    assert row[0, spec.index("freq")] == 220
    assert row[0, spec.index("ratio")] == spec.params[spec.index("ratio")].default
    with pytest.raises(ParameterError, match="no parameter 'frequency'.*freq, ratio"):
        spec.from_dicts({"frequency": 220})
    with pytest.raises(ParameterError, match="finite"):
        spec.from_dicts({"freq": float("nan")})
    with pytest.raises(ParameterError, match="outside its range"):
        spec.from_dicts({"freq": 5.0})
    with pytest.raises(ParameterError, match="not a number"):
        spec.from_dicts({"freq": "high"})


def test_unknown_synth_names_the_available_ones():
    with pytest.raises(UnknownSynthError, match="unknown synth 'moog'.*fm, subtractive, additive"):
        get_synth("moog")


def test_bad_param_definitions_are_rejected():
    with pytest.raises(ValueError, match="exp scale needs low > 0"):
        Param("x", 0.0, 1.0, 0.5, "exp")
    with pytest.raises(ValueError, match="default"):
        Param("x", 0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="reserved"):
        SynthSpec("s", (Param("out", 0, 1, 0),), lambda p, sr, n: np.zeros((len(p), n)))
    silent = lambda p, sr, n: np.zeros((len(p), n))  # noqa: E731
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="carrier_harmonics must be an int >= 1"):
            SynthSpec("s", (Param("freq", 20, 2000, 440, "exp"),), silent, carrier_harmonics=bad)
    with pytest.raises(ValueError, match="only with a 'freq' parameter"):
        SynthSpec("s", (Param("cutoff", 20, 2000, 440, "exp"),), silent, carrier_harmonics=4)
    assert get_synth("fm").carrier_harmonics == 8 and get_synth("subtractive").carrier_harmonics == 1
    with pytest.raises(ValueError, match=r"read_variants name unknown parameters \['nope'\]"):
        SynthSpec("s", (Param("freq", 20, 2000, 440, "exp"),), silent, read_variants=({"nope": 1.0},))
    assert hash(get_synth("additive")) == hash(get_synth("additive"))  # a frozen spec, read_variants and all


def test_register_synth_is_idempotent_and_guarded():
    spec = get_synth("fm")
    assert synthenv.register_synth(spec) is spec
    other = SynthSpec("fm", spec.params, spec.surrogate)
    with pytest.raises(ValueError, match="already registered"):
        synthenv.register_synth(other)
