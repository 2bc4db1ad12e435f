"""Search baselines that spend a fixed render budget on one target.

Each method gets ``objective(X) -> distances`` over candidates ``X [B, A]`` in [0, 1] (one batched
render per call) and a ``budget`` of candidates; it returns the best candidate it rendered and its
distance, plus the best-so-far curve (one entry per render) for plots. ``cmaes_lm`` also needs
``residuals(X) -> (distances, residuals [B, K])`` (the same render with the distance's residuals,
:func:`synthenv.distances.residuals`), which it then uses for every render; ``cmaes`` uses them, when
given, to begin from an inverse model's closest start where the local quadratic model there says, with
that model's shape (:func:`gauss_newton_start`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Objective = Callable[[np.ndarray], np.ndarray]
Residuals = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class SearchResult:
    x: np.ndarray  # best candidate [A], normalised
    distance: float
    renders: int
    curve: list[float] = field(default_factory=list)  # best distance after each render


class Tracker:
    """Counts renders against a budget and keeps the best candidate (and the best-so-far curve).
    With ``residuals``, :meth:`render` renders with them; so does calling the tracker unless
    ``residuals_each_call`` is False (then only the renders that need them pay for them)."""

    def __init__(self, objective: Objective, budget: int, residuals: Residuals | None = None,
                 residuals_each_call: bool = True) -> None:  # fmt: skip
        if budget < 1:
            raise ValueError(f"budget must be at least 1 render, got {budget}")
        self.objective, self.budget, self.residuals = objective, budget, residuals
        self.residuals_each_call = residuals_each_call
        self.best_x: np.ndarray | None = None
        self.best_d = np.inf
        self.best_r: np.ndarray | None = None  # the best candidate's residuals, if it was rendered with them
        self.curve: list[float] = []

    @property
    def left(self) -> int:
        return self.budget - len(self.curve)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.render(X, self.residuals_each_call)[0]

    def render(self, X: np.ndarray, with_residuals: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Render (at most the renders left of) ``X``: distances, and residuals when the tracker has
        ``residuals`` and ``with_residuals`` (else None)."""
        X = np.clip(np.atleast_2d(X), 0.0, 1.0)[: self.left]
        if self.residuals is None or not with_residuals:
            d, R = np.asarray(self.objective(X), dtype=np.float64), None
        else:
            d, R = self.residuals(X)
            d = np.asarray(d, dtype=np.float64)
        self.add(X, d, R)
        return d, R

    def add(self, X: np.ndarray, d: np.ndarray, R: np.ndarray | None = None) -> None:
        """Record candidates rendered elsewhere (e.g. a probe) with their distances (and residuals);
        they count against the budget."""
        X, d = np.atleast_2d(X)[: self.left], np.asarray(d, dtype=np.float64)[: self.left]
        for i, (x, di) in enumerate(zip(X, d, strict=True)):
            if di < self.best_d:
                self.best_d, self.best_x = float(di), x.copy()
                self.best_r = None if R is None else np.array(R[i], dtype=np.float64)
            self.curve.append(self.best_d)

    def result(self) -> SearchResult:
        return SearchResult(self.best_x, self.best_d, len(self.curve), self.curve)


def random_search(
    objective: Objective, dim: int, budget: int, rng: np.random.Generator, batch: int = 64,
    starts: np.ndarray | None = None, known: tuple[np.ndarray, np.ndarray] | None = None,
) -> SearchResult:  # fmt: skip
    """Uniform random candidates in [0, 1]^dim (after ``known`` and ``starts``, when given)."""
    t = _begin(objective, budget, starts, known)
    while t.left:
        t(rng.random((min(batch, t.left), dim)))
    return t.result()


def explore(t: Tracker, dim: int, n: int, seed: int, x0: np.ndarray | None = None,
            known: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Spend ``n`` renders on a space-filling batch (Latin hypercube, plus ``x0`` when given) and return
    the candidates ``[m, dim]`` sorted from best to worst: where the local searches start. ``known``
    (candidates rendered before, e.g. by ``--synth auto``'s probe; already in ``t``) join the ranking,
    so a probe is part of the exploration, not a second one."""
    from scipy.stats import qmc

    n = max(0, min(n, t.left))
    X = qmc.LatinHypercube(d=dim, seed=np.random.default_rng(seed)).random(n)
    if x0 is not None and n:
        X[0] = np.clip(x0, 0.0, 1.0)
    d = t(X) if n else np.empty(0)
    if known is not None and len(known[0]):
        X, d = np.concatenate([np.atleast_2d(known[0]), X]), np.concatenate([np.asarray(known[1], dtype=float), d])
    return X[np.argsort(d, kind="stable")]


EXPLORE_FRACTION = 0.25


def start_sigma(d: float) -> float:
    """The first step (normalised units) of a local search that starts from an inverse model's
    guesses, from the distance ``d`` (dB) of the closest one: 0.02 within 4 dB (a guess in the right
    basin: fine steps), growing to 0.1 at 20 dB and beyond (a far guess: look wider). Measured with fm,
    CMA-ES at 50 renders: 0.02 is best on in-domain targets, 0.05 on real notes 10-15 dB away."""
    return float(np.clip(d / 200.0, 0.02, 0.1))


EXPLORE_PER_DIM = 10  # at most this many exploring renders per dimension: big budgets go to refining


def explore_size(budget: int, dim: int) -> int:
    """How many of ``budget`` renders the local searches first spend exploring: a quarter, at least
    two and at most ten per dimension, never all of it. (fm, 12 held-out targets, CMA-ES at 1,000
    renders: 2.96 dB mean exploring a quarter, 0.90 with at most ten per dimension, 1.52 with four.)"""
    return int(min(max(int(budget * EXPLORE_FRACTION), 2 * dim, 8), EXPLORE_PER_DIM * dim, max(budget - 1, 1)))


def hill_climb(objective: Objective, dim: int, budget: int, rng: np.random.Generator, x0: np.ndarray | None = None,
               sigma: float = 0.2, batch: int = 8, starts: np.ndarray | None = None,
               known: tuple[np.ndarray, np.ndarray] | None = None) -> SearchResult:  # fmt: skip
    """A (1, λ) hill climber from the best of a space-filling batch (:func:`explore`, ``x0`` included),
    or of ``starts`` (e.g. an inverse model's guesses, then with a smaller first step):
    λ Gaussian steps around the best so far; the step shrinks when no step improves, grows when one
    does (a 1/5th-success-style rule)."""
    t = _begin(objective, budget, starts, known)
    if starts is not None and len(t.curve):
        sigma = start_sigma(t.best_d)
    else:
        explore(t, dim, explore_size(budget, dim) - len(t.curve), int(rng.integers(2**31)), x0, known)
    while t.left:
        before = t.best_d
        t(t.best_x + sigma * rng.standard_normal((min(batch, t.left), dim)))
        sigma = min(0.5, sigma * 1.5) if t.best_d < before else max(0.01, sigma * 0.6)
    return t.result()


def cmaes(objective: Objective, dim: int, budget: int, seed: int, x0: np.ndarray | None = None,
          sigma0: float | None = None, starts: np.ndarray | None = None,
          known: tuple[np.ndarray, np.ndarray] | None = None,
          residuals: Residuals | None = None) -> SearchResult:  # fmt: skip
    """CMA-ES (the ``cma`` package) in [0, 1]^dim that uses its budget: first a space-filling batch
    (:func:`explore`, ``x0`` included), then CMA-ES from its best with a step size from the spread of
    its best tenth (or ``sigma0``), restarted from the best so far with half the step whenever it
    converges while renders are left. One batched render per generation. With ``starts`` (e.g. an
    inverse model's guesses) those are rendered instead of the batch, and CMA-ES starts from the
    closest with :func:`start_sigma` of its distance (or ``sigma0``); given the distance's ``residuals``
    too, CMA-ES begins from :func:`gauss_newton_start` at that start (one damped Gauss-Newton step from
    there, its first covariance the inverse Gauss-Newton Hessian), when more than three times the
    ``dim + 1`` renders its Jacobian costs are left. A cold search (no ``starts``) starts round: from the
    best of its exploring batch, a Gauss-Newton start made fm's in-domain matches farther (README)."""
    shaped = residuals is not None and starts is not None
    t = _begin(objective, budget, starts, known, residuals if shaped else None, residuals_each_call=False)
    sigma = _cma_sigma(t, dim, budget, seed, x0, sigma0, starts, known)
    shape = None
    if shaped and len(t.curve) and t.left > 3 * (dim + 1):
        shape = gauss_newton_start(t)
    _cma(t, dim, seed, sigma, budget, shape)
    return t.result()


SHAPE_CONDITION = 1e3  # gauss_newton_start's largest ratio of its covariance's eigenvalues


def gauss_newton_start(t: Tracker, h: float | None = None) -> np.ndarray | None:
    """Where CMA-ES from the starts begins, and its first covariance ``[dim, dim]`` (``dim``: the length
    of ``t``'s best candidate): the local quadratic model of the distance's residuals at ``t``'s best,
    from their Jacobian ``J`` (:func:`_forward_differences`, ``dim + 1`` renders; ``dim`` when that
    candidate was rendered with its residuals). Its minimum: one damped Gauss-Newton step per
    :data:`LM_DAMPING` (:func:`gauss_newton_steps`, one more batch of as many renders; CMA-ES then starts
    from the closest candidate so far, a step or the start). Its shape, the returned
    covariance: the inverse of the Gauss-Newton Hessian ``JᵀJ``, its eigenvalues limited to a ratio of
    :data:`SHAPE_CONDITION`, scaled to a mean variance of 1. Long along the directions in which the distance
    barely changes (often several parameters together: on a real piano note, the filter's resonance, the
    attack and the release), short across the steep ones, so that CMA-ES's first generations step along
    the valley that its own covariance would take many generations to learn. None (and no steps) if the
    Jacobian is not finite."""
    x = t.best_x
    J, r0 = _forward_differences(t, x, LM_STEP if h is None else h, t.best_r)[3:]
    H = J.T @ J
    if not (np.isfinite(H).all() and np.isfinite(r0).all()) or not H.any():
        return None
    t(gauss_newton_steps(x, r0, J))
    e, B = np.linalg.eigh(H)
    e = np.maximum(e, e.max() / SHAPE_CONDITION)
    C = (B / e) @ B.T
    return C / np.mean(np.diag(C))


def gauss_newton_steps(x: np.ndarray, r: np.ndarray, J: np.ndarray, mu: float = 1.0) -> np.ndarray:
    """Levenberg-Marquardt's candidates from ``x`` (residuals ``r`` [K], their Jacobian ``J`` [K, dim]):
    ``x - (JᵀJ + λ·diag(JᵀJ))⁻¹ Jᵀr`` for each λ of :data:`LM_DAMPING` times ``mu``, within [0, 1]."""
    g, H = J.T @ r, J.T @ J
    scale = np.diag(np.diag(H))
    return np.array([np.clip(x - np.linalg.lstsq(H + mu * lam * scale, g, rcond=None)[0], 0.0, 1.0)
                     for lam in LM_DAMPING])  # fmt: skip


def _forward_differences(t: Tracker, x: np.ndarray, h: float, r0: np.ndarray | None = None):
    """The Jacobian of the distance's residuals at ``x`` by forward differences of ``h`` (backward at
    the upper bound), rendered through ``t`` in one batch of ``len(x)`` steps (``x`` itself too, first,
    when its residuals ``r0`` are not given): ``(X, d, R, J [K, len(x)], r0)``, the steps' candidates,
    distances and residuals, the Jacobian and ``x``'s residuals."""
    step = np.where(x + h <= 1.0, h, -h)
    X = x + np.diag(step)
    if r0 is None:
        d, R = t.render(np.vstack([x[None], X]))
        r0, d, R = R[0], d[1:], R[1:]
    else:
        d, R = t.render(X)
    return X, d, R, ((R - r0) / step[:, None]).T, r0


def cmaes_lm(objective: Objective, dim: int, budget: int, seed: int, x0: np.ndarray | None = None,
             starts: np.ndarray | None = None, known: tuple[np.ndarray, np.ndarray] | None = None,
             residuals: Residuals | None = None) -> SearchResult:  # fmt: skip
    """:func:`cmaes` for half of the renders left after its exploring batch (or ``starts``), then
    :func:`levenberg_marquardt` from the best so far: CMA-ES finds the basin, Gauss-Newton steps on the
    distance's ``residuals`` reach its bottom, which CMA-ES's few generations at a small budget do not
    (fm, 56 in-domain targets from an inverse model's starts at 50 renders: 1.79 to 1.50 dB)."""
    if residuals is None:
        raise ValueError("cmaes_lm refines on the distance's residuals: pass residuals (a distance that has them)")
    t = _begin(objective, budget, starts, known, residuals)
    sigma = _cma_sigma(t, dim, budget, seed, x0, None, starts, known)
    lm = t.left - t.left // 2
    _cma(t, dim, seed, sigma, len(t.curve) + t.left - (lm if lm >= dim + len(LM_DAMPING) + 2 else 0))
    levenberg_marquardt(t, dim, seed)  # with too few renders for one iteration, CMA-ES took them all
    return t.result()


def _cma_sigma(t: Tracker, dim: int, budget: int, seed: int, x0, sigma0, starts, known) -> float:
    """CMA-ES's first step: after rendering ``starts`` (already in ``t``) :func:`start_sigma`, else after
    exploring (:func:`explore`) the spread of the best tenth."""
    if starts is not None and len(t.curve):
        return start_sigma(t.best_d) if sigma0 is None else float(sigma0)
    ranked = explore(t, dim, explore_size(budget, dim) - len(t.curve), seed, x0, known)
    elite = ranked[: max(2, len(ranked) // 10)]
    return float(np.clip(elite.std(axis=0).mean(), 0.05, 0.3)) if sigma0 is None else float(sigma0)


def _cma(t: Tracker, dim: int, seed: int, sigma: float, until: int, shape: np.ndarray | None = None) -> None:
    """CMA-ES from ``t``'s best until ``t`` has ``until`` renders (or none left), restarted from the best
    with half the step whenever it converges; ``shape``: its first covariance (each restart's too)."""
    import cma

    restart = 0
    while t.left and len(t.curve) < until:
        es = cma.CMAEvolutionStrategy(
            t.best_x, sigma,
            {"bounds": [0.0, 1.0], "seed": int(seed) + 1 + restart, "verbose": -9, "maxfevals": until - len(t.curve)},
        )  # fmt: skip
        if shape is not None:  # the cma package's (4.x) sampler: C and its eigen-decomposition, what ask() draws from
            es.sm.C = shape.copy()
            es.sm._decompose_C()
        while t.left and len(t.curve) < until and not es.stop():
            X = np.array(es.ask())
            d = t(X[: until - len(t.curve)])
            if len(d) < len(X):  # the renders ran out inside this generation
                break
            es.tell(list(X), list(d))
        restart += 1
        sigma = max(0.01, sigma / 2)


LM_STEP = 0.01  # the finite-difference step (normalised units) of levenberg_marquardt's Jacobian
LM_DAMPING = (0.01, 0.1, 1.0)  # the damping factors it tries at once (times its adaptive scale)


def levenberg_marquardt(t: Tracker, dim: int, seed: int = 0, h: float = LM_STEP) -> None:
    """Spend ``t``'s renders left refining its best candidate with Levenberg-Marquardt on the distance's
    residuals (``t.residuals``): a Jacobian from ``dim`` forward differences (one batched render), then
    per iteration one batch of steps ``-(JᵀJ + λ·diag(JᵀJ))⁻¹ Jᵀr`` for each of :data:`LM_DAMPING`;
    the closest is kept if it is closer (by the distance, not by the residuals' squares) and the
    Jacobian is updated (Broyden). If none is closer, λ grows tenfold, and the Jacobian is measured
    again if it had been updated (a freshly measured one is kept; when λ gets large, it is measured
    again with half the difference step). With fewer renders left than an iteration needs: small
    Gaussian steps around the best."""
    if not t.left:
        return
    x, d0, r0 = t.best_x, t.best_d, t.best_r
    if x is None or t.residuals is None:
        raise ValueError("levenberg_marquardt refines a rendered candidate on residuals: a tracker with residuals")
    J, fresh, mu = None, False, 1.0
    if r0 is None and t.left >= dim + 2:  # rendered without residuals (e.g. a start): render it again with them
        d, R = t.render(x[None])
        d0, r0 = min(d0, float(d[0])), R[0]
    while t.left and r0 is not None:
        if J is None:
            if t.left < dim + 1:
                break
            X, d, R, J, _ = _forward_differences(t, x, h, r0)  # J: [K, dim]
            fresh = True
            if not (np.isfinite(J).all() and np.isfinite(r0).all()):
                break
            i = int(np.argmin(_finite(d)))
            if d[i] < d0:  # a difference step that is closer: move there (the Jacobian stays valid)
                x, d0, r0 = X[i], float(d[i]), R[i]
        P = gauss_newton_steps(x, r0, J, mu)
        d, R = t.render(P)
        if not len(d):
            break
        d = np.where(np.isfinite(R).all(axis=1), _finite(d), np.inf)
        i = int(np.argmin(d))
        if d[i] < d0:
            dx = P[i] - x
            J = J + np.outer((R[i] - r0) - J @ dx, dx) / max(float(dx @ dx), 1e-12)  # Broyden's update
            x, d0, r0, fresh = P[i], float(d[i]), R[i], False
            if i == 0:  # the least damped step won: trust the model more
                mu = max(mu * 0.3, 1e-4)
        else:
            mu *= 10.0
            if not fresh:
                J = None
            elif mu > 1e4:
                mu, h, J = 1.0, max(h / 2, 1e-3), None
    rng = np.random.default_rng(seed)
    while t.left:
        t(t.best_x + h / 2 * rng.standard_normal((min(4, t.left), dim)))


def _finite(d: np.ndarray) -> np.ndarray:
    """Distances with NaN (a failed render's) as infinitely far."""
    return np.where(np.isfinite(d), d, np.inf)


METHODS = ("random", "hillclimb", "cmaes", "cmaes_lm")


def _begin(objective: Objective, budget: int, starts, known, residuals: Residuals | None = None,
           residuals_each_call: bool = True) -> Tracker:  # fmt: skip
    t = Tracker(objective, budget, residuals, residuals_each_call)
    if known is not None:
        t.add(*known)
    if starts is not None and len(starts) and t.left:
        t(starts)
    return t


def run_search(method: str, objective: Objective, dim: int, budget: int, seed: int, x0=None,
               starts: np.ndarray | None = None, known: tuple[np.ndarray, np.ndarray] | None = None,
               residuals: Residuals | None = None) -> SearchResult:  # fmt: skip
    """Run ``method``; ``starts`` ``[n, dim]`` (an inverse model's guesses, best first) are rendered
    first and the search refines from the closest (random search: keeps sampling uniformly).
    ``known`` (candidates and distances rendered before, e.g. by ``--synth auto``'s probe) count against
    ``budget``; a cold search (no ``starts``) counts them as part of its exploration. ``residuals``: what
    ``cmaes_lm`` renders with, and what ``cmaes`` takes its Gauss-Newton start from the starts with (see the
    module doc); the other methods do not use them."""
    rng = np.random.default_rng(seed)
    if starts is not None:
        starts = np.clip(np.atleast_2d(np.asarray(starts, dtype=np.float64)), 0.0, 1.0)[: max(budget, 1)]
    kw = {"starts": starts, "known": known}
    if method == "random":
        return random_search(objective, dim, budget, rng, **kw)
    if method == "hillclimb":
        return hill_climb(objective, dim, budget, rng, x0, **kw)
    if method == "cmaes":
        return cmaes(objective, dim, budget, seed, x0, residuals=residuals, **kw)
    if method == "cmaes_lm":
        return cmaes_lm(objective, dim, budget, seed, x0, residuals=residuals, **kw)
    raise ValueError(f"unknown search method {method!r}; choose from {', '.join(METHODS)}")
