import numpy as np
import pytest

from synthenv import distances, get_synth
from synthenv.features import analyze

SR = 22050


@pytest.fixture(scope="module")
def fm_batch():
    spec = get_synth("fm")
    x = np.random.default_rng(0).random((6, spec.n_params))
    return spec, x, analyze(spec.surrogate(spec.denormalize(x), SR, SR), SR)


@pytest.mark.parametrize("name", distances.available_distances("audio"))
def test_zero_on_identical_input(name, fm_batch):
    _, _, an = fm_batch
    assert np.allclose(distances.compute(name, an, an), 0.0, atol=1e-6)


@pytest.mark.parametrize(
    "name", [d for d in distances.available_distances("audio") if distances.get_distance(d).symmetric]
)
def test_symmetric(name, fm_batch):
    _, _, an = fm_batch
    a, b = an.take(slice(0, 3)), an.take(slice(3, 6))
    np.testing.assert_allclose(distances.compute(name, a, b), distances.compute(name, b, a), rtol=1e-5)


def test_every_distance_is_documented():
    for name in distances.available_distances():
        d = distances.get_distance(name)
        assert len(d.definition) > 20, name
    with pytest.raises(ValueError, match="unknown distance 'l2'.*logmel_l1"):
        distances.get_distance("l2")


@pytest.mark.parametrize("synth", ["fm", "subtractive", "additive"])
@pytest.mark.parametrize("name", distances.available_distances("audio"))
def test_distance_grows_as_params_move_away(synth, name):
    """Averaged over random targets and directions, distance grows with the parameter offset."""
    spec = get_synth(synth)
    rng = np.random.default_rng(42)
    keep = [j for j, n in enumerate(spec.names) if n != "freq"]
    base = rng.uniform(0.2, 0.8, (24, spec.n_params))
    direction = rng.normal(size=(24, spec.n_params))
    direction[:, [j for j in range(spec.n_params) if j not in keep]] = 0
    direction /= np.abs(direction).max(axis=1, keepdims=True)
    ref = analyze(spec.surrogate(spec.denormalize(base), SR, SR), SR)
    means = []
    for step in (0.02, 0.1, 0.3):
        moved = np.clip(base + step * direction, 0, 1)
        est = analyze(spec.surrogate(spec.denormalize(moved), SR, SR), SR)
        means.append(float(distances.compute(name, ref, est).mean()))
    assert means[0] < means[1] < means[2], means


def test_param_mae():
    assert distances.param_mae(np.zeros(4), np.ones(4))[0] == pytest.approx(1.0)
    assert distances.param_mae(np.full((2, 4), 0.5), np.full((2, 4), 0.25)).tolist() == [0.25, 0.25]


def test_audible_ignores_what_lies_below_a_listeners_range_and_logmel_l1_does_not():
    """Two sounds that differ only by a component 75 dB below the peak (inaudible next to it): audible
    calls them equal, the absolute-floor logmel_l1 does not; a component at -20 dB counts for both."""
    t = np.arange(SR) / SR
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-2 * t)
    hiss = np.random.default_rng(0).standard_normal(SR)
    quiet = tone + hiss * 0.5 * 10 ** (-75 / 20)
    loud = tone + hiss * 0.5 * 10 ** (-20 / 20)
    a = analyze(np.stack([tone, quiet, loud]).astype(np.float32), SR)
    ref = a.take([0])
    audible = distances.compute("audible", ref, a)
    logmel = distances.compute("logmel_l1", ref, a)
    assert audible[1] < 0.05 and logmel[1] > 5 * audible[1] + 1.0, (audible, logmel)
    assert audible[2] > 3.0 and logmel[2] > 3.0


def test_audible_floor_is_soft():
    """audible is 10·log10(P + P_floor) per cell, P_floor 70 dB below the louder peak: a component 10 dB
    below the range barely counts (a hard floor would count it as nothing at all: the search would get no
    pull toward it), one 20 dB above counts fully, and the value equals the formula."""
    t = np.arange(SR) / SR
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    high = np.sin(2 * np.pi * 5000 * t)  # far from the tone: its own cells
    sounds = np.stack([tone, tone + 0.5 * 10 ** (-80 / 20) * high, tone + 0.5 * 10 ** (-50 / 20) * high])
    a = analyze(sounds.astype(np.float32), SR)
    ref = a.take([0])
    d = distances.compute("audible", ref, a)

    def by_formula(floor_fn):
        total = 0.0
        for n_fft, n_mels in distances.AUDIBLE_VIEWS:
            r, e = ref.logmel_at(n_fft, n_mels).astype(np.float64), a.logmel_at(n_fft, n_mels).astype(np.float64)
            peak = np.maximum(r.max(), e.reshape(len(e), -1).max(axis=1))[:, None, None]
            fl = peak - distances.AUDIBLE_RANGE_DB
            total = total + np.abs(floor_fn(r, fl) - floor_fn(e, fl)).mean(axis=(1, 2))
        return total / len(distances.AUDIBLE_VIEWS)

    soft = by_formula(lambda x, fl: 10 * np.log10(10 ** (x / 10) + 10 ** (fl / 10)))
    hard = by_formula(np.maximum)
    np.testing.assert_allclose(d, soft, rtol=1e-4, atol=1e-5)
    assert 0.002 < d[1] < 0.05 and d[1] > 5 * hard[1], (d, hard)  # below the range: a little, not nothing
    assert d[2] > 20 * d[1]


def test_audible_floor_follows_the_louder_sound_of_each_pair(fm_batch):
    """The floor is set per pair by the louder peak: the batched result equals pair-by-pair results."""
    _, _, an = fm_batch
    ref = an.take([0])
    batched = distances.compute("audible", ref, an)
    one_by_one = [distances.compute("audible", ref, an.take([i]))[0] for i in range(len(an))]
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5)


@pytest.mark.parametrize("name", ["logmel_l1", "mfcc_l1", "audible"])
def test_residuals_are_the_cells_the_distance_averages(name, fm_batch):
    """A distance's residuals (what cmaes_lm's Gauss-Newton steps shrink) are its per-cell differences:
    zero on identical input, and each block of them (one per FFT size for audible), scaled back, gives
    the distance exactly."""
    _, _, an = fm_batch
    ref, est = an.take(slice(0, 1)), an.take(slice(1, 6))
    r = distances.residuals(name, ref, est)
    assert r.shape[0] == 5 and r.dtype == np.float64
    assert np.allclose(distances.residuals(name, an, an), 0.0)
    blocks = (
        [ref.logmel_at(n, m).shape[1] * ref.logmel_at(n, m).shape[2] for n, m in distances.AUDIBLE_VIEWS]
        if name == "audible"
        else [r.shape[1]]
    )
    assert sum(blocks) == r.shape[1]
    d, start = 0.0, 0
    for k in blocks:  # each block holds diff / sqrt(k * n_blocks)
        d = d + np.abs(r[:, start : start + k]).sum(axis=1) * np.sqrt(len(blocks) / k) / len(blocks)
        start += k
    np.testing.assert_allclose(d, distances.compute(name, ref, est), rtol=1e-4)


def test_a_distance_without_residuals_says_which_have_them(fm_batch):
    _, _, an = fm_batch
    assert not distances.has_residuals("multiscale") and distances.has_residuals("audible")
    with pytest.raises(ValueError, match="'multiscale' has no residuals.*audible"):
        distances.residuals("multiscale", an, an)


def test_audible_hears_the_noise_between_a_low_notes_harmonics():
    """A 196 Hz harmonic tone (partials up to Nyquist) against the same tone with white noise 35 dB below
    it (breath, bow, room): the noise lies between the harmonics. The 4096-point view (128 bands)
    resolves them and the valleys the noise fills; shorter windows smear the harmonics over the valleys.
    Measured: 3.20 dB in the 4096 view, 0.92 at 2048, 0.26 at 1024, 0.12 at 512; audible 1.46 dB, where
    its views of before (2048/1024/512, 64 bands) gave 0.43."""
    t = np.arange(SR) / SR
    tone = sum(np.sin(2 * np.pi * 196 * k * t) / k for k in range(1, SR // 2 // 196 + 1))
    tone = tone / np.sqrt(np.mean(tone**2)) * 0.1
    noisy = tone + np.random.default_rng(0).standard_normal(SR) * 0.1 * 10 ** (-35 / 20)
    a = analyze(np.stack([tone, noisy]).astype(np.float32), SR)
    ref, est = a.take([0]), a.take([1])
    views = dict(zip(distances.AUDIBLE_VIEWS, distances._audible_diffs(ref, est), strict=True))
    fine, short = np.abs(views[(4096, 128)]).mean(), np.abs(views[(1024, 64)]).mean()
    assert fine > 3 * short and short > 0.1, (fine, short)
    d = distances.compute("audible", ref, est)[0]
    np.testing.assert_allclose(d, np.mean([np.abs(v).mean() for v in views.values()]), rtol=1e-4)

    def before(n_fft):  # the same soft floor on one of the views of before
        r, e = ref.logmel_at(n_fft, 64), est.logmel_at(n_fft, 64)
        floor = max(r.max(), e.max()) - distances.AUDIBLE_RANGE_DB
        return np.abs(distances._over_floor(e, floor) - distances._over_floor(r, floor)).mean()

    assert d > 2 * np.mean([before(n) for n in (2048, 1024, 512)]), d
