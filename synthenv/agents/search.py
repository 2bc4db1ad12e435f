"""Search baselines that spend a fixed render budget on one target.

Each method gets ``objective(X) -> distances`` over candidates ``X [B, A]`` in [0, 1] (one batched
render per call) and a ``budget`` of candidates; it returns the best candidate it rendered and its
distance, plus the best-so-far curve (one entry per render) for plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Objective = Callable[[np.ndarray], np.ndarray]


@dataclass
class SearchResult:
    x: np.ndarray  # best candidate [A], normalised
    distance: float
    renders: int
    curve: list[float] = field(default_factory=list)  # best distance after each render


class _Tracker:
    def __init__(self, objective: Objective, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1 render, got {budget}")
        self.objective, self.budget = objective, budget
        self.best_x: np.ndarray | None = None
        self.best_d = np.inf
        self.curve: list[float] = []

    @property
    def left(self) -> int:
        return self.budget - len(self.curve)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.clip(np.atleast_2d(X), 0.0, 1.0)[: self.left]
        d = np.asarray(self.objective(X), dtype=np.float64)
        for x, di in zip(X, d, strict=True):
            if di < self.best_d:
                self.best_d, self.best_x = float(di), x.copy()
            self.curve.append(self.best_d)
        return d

    def result(self) -> SearchResult:
        return SearchResult(self.best_x, self.best_d, len(self.curve), self.curve)


def random_search(
    objective: Objective, dim: int, budget: int, rng: np.random.Generator, batch: int = 64
) -> SearchResult:
    """Uniform random candidates in [0, 1]^dim."""
    t = _Tracker(objective, budget)
    while t.left:
        t(rng.random((min(batch, t.left), dim)))
    return t.result()


def hill_climb(objective: Objective, dim: int, budget: int, rng: np.random.Generator, x0: np.ndarray | None = None,
               sigma: float = 0.2, batch: int = 8) -> SearchResult:  # fmt: skip
    """A (1, λ) hill climber: λ Gaussian steps around the best so far; the step shrinks when no step
    improves, grows when one does (a 1/5th-success-style rule)."""
    t = _Tracker(objective, budget)
    x = np.full(dim, 0.5) if x0 is None else np.asarray(x0, dtype=np.float64)
    t(x[None])
    while t.left:
        before = t.best_d
        t(t.best_x + sigma * rng.standard_normal((min(batch, t.left), dim)))
        sigma = min(0.5, sigma * 1.5) if t.best_d < before else max(0.01, sigma * 0.6)
    return t.result()


def cmaes(objective: Objective, dim: int, budget: int, seed: int, x0: np.ndarray | None = None,
          sigma0: float = 0.3) -> SearchResult:  # fmt: skip
    """CMA-ES (the ``cma`` package) in [0, 1]^dim with its default population; one batched render
    per generation; the last generation is cut to the budget."""
    import cma

    t = _Tracker(objective, budget)
    es = cma.CMAEvolutionStrategy(
        np.full(dim, 0.5) if x0 is None else np.asarray(x0, dtype=np.float64),
        sigma0,
        {"bounds": [0.0, 1.0], "seed": int(seed) + 1, "verbose": -9, "maxfevals": budget},
    )
    while t.left and not es.stop():
        X = np.array(es.ask())
        d = t(X)
        if len(d) < len(X):  # budget ran out inside this generation
            break
        es.tell(list(X), list(d))
    while t.left:  # cma stopped early (converged): spend the rest around its mean
        t(np.clip(es.mean + 0.01 * np.random.default_rng(seed).standard_normal((t.left, dim)), 0, 1))
    return t.result()


METHODS = ("random", "hillclimb", "cmaes")


def run_search(method: str, objective: Objective, dim: int, budget: int, seed: int, x0=None) -> SearchResult:
    rng = np.random.default_rng(seed)
    if method == "random":
        return random_search(objective, dim, budget, rng)
    if method == "hillclimb":
        return hill_climb(objective, dim, budget, rng, x0)
    if method == "cmaes":
        return cmaes(objective, dim, budget, seed, x0)
    raise ValueError(f"unknown search method {method!r}; choose from {', '.join(METHODS)}")
