"""The report's statistics: means with bootstrap confidence intervals."""

import numpy as np

from synthenv.agents.report import mean_ci


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits, widths = 0, []
    for _ in range(200):
        sample = rng.exponential(2.0, 32)  # skewed, like distances; true mean 2
        mean, median, lo, hi = mean_ci(sample, n_boot=1000, seed=int(rng.integers(1 << 30)))
        assert lo < mean < hi and mean == sample.mean() and median == np.median(sample)
        hits += lo <= 2.0 <= hi
        widths.append(hi - lo)
    assert 0.88 <= hits / 200 <= 0.99, hits
    wide = np.mean([np.subtract(*mean_ci(rng.exponential(2.0, 8), n_boot=1000)[3:1:-1]) for _ in range(50)])
    assert wide > 1.5 * np.mean(widths)  # fewer targets, wider interval


def test_degenerate_samples():
    assert np.isnan(mean_ci([])[0])
    assert mean_ci([3.0]) == (3.0, 3.0, 3.0, 3.0)
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0, 2.0)
