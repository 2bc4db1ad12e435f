"""``SoundMatchEnv``: turn a synth's knobs until its sound matches a target.

Observation (float32, ``Box``), in this order:

=================  ==================================  =====================================
slice              what                                range
=================  ==================================  =====================================
``[0, S)``         target summary features             ``[-10, 10]`` (see ``features``)
``[S, 2S)``        current sound's summary features    ``[-10, 10]``
``[2S, 2S + A)``   current searchable params, [0, 1]   ``[0, 1]``
``[2S + A, 2S+2A)`` only with ``observe_guess=True``:  ``[0, 1]``
                   the inverse model's best-scored
                   guess of the searchable params
then ``A`` more    only with ``observe_move=True``:    ``[-1, 1]``
                   the inverse model's suggested move
                   (see ``observe_move``)
=================  ==================================  =====================================

with ``S = 104`` (13 MFCCs x 8 time segments) and ``A`` the number of searchable parameters
(every parameter of the synth, less ``freq`` when ``pitch="target"``).

Action: ``Box(-1, 1, (A,))``. ``action_mode="delta"`` moves each normalised parameter by
``action_scale * action``; ``"absolute"`` sets it to ``(action + 1) / 2``. With ``step_from="best"``
the move starts from the episode's best candidate so far and a candidate that is not closer is
dropped (an elitist search: the observed "current" sound is then always the best).

Reward: the improvement in distance relative to the episode's starting distance,
``clip((d_{t-1} - d_t) / max(d_0, success_threshold), -1, 1)``, so that an episode's return is the
fraction of the initial distance that was removed; plus ``success_bonus`` on the step that reaches
``d_t < success_threshold``, which also terminates the episode. The reward is bounded for every start:
``|r| <= 1 + success_bonus`` (an episode that starts at its target has ``d_0 = 0``; the denominator
is then the threshold). An episode whose start is already below the threshold reports
``info["success"] = True`` at reset. Episodes are truncated after ``max_steps`` steps.
"""

from __future__ import annotations

import copy
import inspect
import numbers
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from synthenv import distances
from synthenv.backends import DEFAULT_FEATURES, FEATURE_SOURCES, available_backends, check_backend_args, make_backend
from synthenv.errors import ConfigError, SynthenvError
from synthenv.features import N_SEGMENTS, SUMMARY_CLIP, Analysis, analyze, server_n_frames, summary_size
from synthenv.spec import pitch_to_param
from synthenv.synths import get_synth
from synthenv.targets import AudioTargets, Target

#: Default success thresholds per reward distance, about a tenth of the mean distance between
#: random patches of the built-in synths (fm/subtractive/additive log-mel L1: 20/25/10 dB).
#: ``metrics``: False (default: only the reward distance, fast), "final" (every distance in the info of
#: an episode's last step) or True (every distance on every step; costs several times the step).
METRICS_MODES = (False, "final", True)

SUCCESS_THRESHOLDS = {
    "logmel_l1": 2.0,
    "audible": 1.5,
    "mfcc_l1": 3.0,
    "lsd": 2.0,
    "spectral_convergence": 0.3,
    "multiscale": 0.15,
    "server_l1": 0.03,
}


class SoundMatchEnv(gym.Env):
    """Sound matching on a synth rendered by a backend (see the module doc for spaces and reward).

    Args:
        synth: registered synth name ("fm", "subtractive", "additive", or your own).
        backend: "numpy" (scsynth backends come as "nrt" and "live").
        targets: "random" (random params of ``synth``, ground truth known), an audio file, a
            directory of audio files, an array ``[N]``/``[K, N]`` at ``sample_rate``, or a list.
        max_steps: steps before truncation.
        action_mode: "delta" or "absolute".
        action_scale: step size of a "delta" action in normalised units.
        sample_rate, duration: of every sound (Hz, s).
        pitch: "target" fixes ``freq`` from the target (its params, or its refined pyin estimate);
            "search" lets the agent set it.
        distance: the reward distance, a name from :mod:`synthenv.distances` (default
            ``"logmel_l1"`` with audio features, ``"server_l1"`` with server features).
        success_threshold: terminate below this distance (default per distance).
        success_bonus: reward added on success.
        reward_mode: "improvement" (default): each step is rewarded for the distance it removes from
            the previous step's, so an episode's return is the fraction removed by its last step;
            "best": only a step that beats the episode's best distance so far is rewarded, by how much
            (never negative), so the return is the fraction removed by the best candidate, which is
            what a search with a render budget keeps (exploring steps cost nothing).
        step_from: "current" (default): each action moves the current candidate; "best": each action
            moves the episode's best candidate so far, and a step whose render is not closer is
            scored and then dropped (an elitist search: the observed sound and params are always the
            best so far's, ``info["distance"]`` the best distance, and the reward the improvement of
            the best). A policy for "best" proposes moves from the best, so it acts by sampling its
            action distribution (a deterministic one would repeat a rejected move).
        init: "default" starts every episode at the synth's default params, "random" at random ones,
            "inverse" at the inverse model's best-scored guess for the target (:mod:`synthenv.inverse`;
            the start is the episode's first render, as always).
        inverse_model: the inverse model for ``init="inverse"`` / ``observe_guess``: a ``.npz`` from
            ``synthenv fit-inverse``; default the one that ships for the synth.
        inverse_starts: with ``init="inverse"``, render this many of the model's starts (its guesses
            and nearest bank rows, :meth:`~synthenv.inverse.InverseModel.starts`) at reset, in one
            backend call, and begin at the closest; :attr:`start_renders` says how many renders a
            reset costs (for equal-budget comparisons).
        observe_guess: append the inverse model's guess (searchable params, [0, 1]) to the
            observation, so a policy can use it.
        observe_move: append the inverse model's suggested move (searchable params, [-1, 1]): what
            the model hears in the target minus what it hears in the current sound, each its
            hypothesis nearest the current params (:func:`suggested_move`). Where the model is
            biased, the bias cancels; what is left points from the current sound toward the target.
        move_gain: with ``action_mode="delta"``, each step also moves by ``move_gain`` times the
            suggested move (normalised units): the action is then a residual on top of the inverse
            model's suggestion (residual policy learning), so an untrained policy already follows it.
            0 (default) is off; it needs an inverse model like ``observe_move``.
        features: "audio" (the Python extractor on rendered audio: numpy, nrt) or "server"
            (scsynth's analysis SynthDef: nrt, live); default "audio", "server" for live. Target and
            candidate always use the same one.
        backend_options: extra keyword arguments for the backend (e.g. ``{"server": "127.0.0.1:57110"}``
            or ``{"restart": True}`` for live, ``{"processes": 1}`` for nrt).
        metrics: every registered distance (and ``param_mae`` when the target's params are known) in
            ``info["metrics"]``: False (default; only the reward distance, ``info["distance"]``),
            ``"final"`` (on the step that ends an episode) or True (every step: several times the
            cost of a step).
        render_mode: None or "rgb_array" (target and current log-mel spectrograms).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        synth: str = "fm",
        backend: str = "numpy",
        targets: Any = "random",
        max_steps: int = 50,
        action_mode: str = "delta",
        action_scale: float = 0.1,
        sample_rate: int = 22050,
        duration: float = 1.0,
        pitch: str = "target",
        distance: str | None = None,
        success_threshold: float | None = None,
        success_bonus: float = 1.0,
        reward_mode: str = "improvement",
        step_from: str = "current",
        init: str = "default",
        inverse_model: str | None = None,
        inverse_starts: int = 1,
        observe_guess: bool = False,
        observe_move: bool = False,
        move_gain: float = 0.0,
        features: str | None = None,
        metrics: bool | str = False,
        render_mode: str | None = None,
        backend_options: dict | None = None,
    ) -> None:
        # every argument is checked (and audio targets found) before the backend starts anything, so a
        # bad argument leaves no scsynth or jackd behind
        checked = check_env_kwargs(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        features, distance, self.targets = checked["features"], checked["distance"], checked["targets"]
        self.inverse = checked["inverse"]
        self.synth = get_synth(synth)
        extra = dict(backend_options or {})
        if features == "server":
            extra["server_features"] = True
        self.backend = make_backend(backend, sample_rate=sample_rate, duration=duration, **extra)
        self.features = features
        self.sample_rate = int(sample_rate)
        self.duration = float(duration)
        self.max_steps = int(max_steps)
        self.action_mode = action_mode
        self.action_scale = float(action_scale)
        self.pitch = pitch
        self.distance = distance
        self.success_threshold = float(
            SUCCESS_THRESHOLDS.get(distance, 0.0) if success_threshold is None else success_threshold
        )
        self.success_bonus = float(success_bonus)
        self.reward_mode = reward_mode
        self.step_from = step_from
        self.init = init
        self.observe_guess = bool(observe_guess)
        self.observe_move = bool(observe_move)
        self.move_gain = float(move_gain)
        self.inverse_starts = int(inverse_starts)
        #: renders a reset spends on the starting sound (targets not counted)
        self.start_renders = self.inverse_starts if init == "inverse" else 1
        self.metrics = metrics
        self.render_mode = render_mode

        spec = self.synth
        self._fixed_freq = pitch == "target" and "freq" in spec.names
        self.search_index = np.array(
            [i for i, n in enumerate(spec.names) if not (self._fixed_freq and n == "freq")], dtype=np.int64
        )
        self.search_names = [spec.names[i] for i in self.search_index]
        n_act = len(self.search_index)
        s = summary_size(features)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n_act,), dtype=np.float32)
        n_x = n_act * (2 if self.observe_guess else 1)
        n_move = n_act if self.observe_move else 0
        low = np.concatenate([np.full(2 * s, -SUMMARY_CLIP), np.zeros(n_x), -np.ones(n_move)]).astype(np.float32)
        high = np.concatenate([np.full(2 * s, SUMMARY_CLIP), np.ones(n_x + n_move)]).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

        self._ep: Episodes | None = None

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode on a new target.

        ``options``: ``{"target_params": {name: value}}`` renders that target instead of a random
        one; ``{"target_index": i}`` picks audio target ``i``.
        """
        super().reset(seed=seed)
        self._ep = self.begin_episodes([self.np_random], [options or {}])
        return self.observe(self._ep)[0], self.infos(self._ep)[0]

    def step(self, action):
        if self._ep is None:
            raise SynthenvError("call reset() before step()")
        a = self.check_actions(action, batched=False)
        obs, reward, terminated, truncated = self.advance(self._ep, a[None, :])
        info = self.infos(self._ep)[0]
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; make the env with render_mode='rgb_array'")
            return None
        if self._ep is None:
            raise SynthenvError("call reset() before render()")
        return self.render_image(self._ep, 0)

    def close(self) -> None:
        self.backend.close()

    # -- views of the single episode ------------------------------------------------------------
    @property
    def params(self) -> dict[str, float]:
        """Current params, physical units."""
        return self.synth.to_dict(self.synth.denormalize(self._episode().x[0]))

    @property
    def target(self) -> Target | None:
        return None if self._ep is None else self._ep.targets[0]

    @property
    def target_analysis(self) -> Analysis:
        """The current target's features (an Analysis of one sound)."""
        return self._episode().target

    def read_start(self) -> np.ndarray | None:
        """The synth's patches read from the current target (:meth:`SynthSpec.read_start`), normalised ``[R, P]``,
        or None (no reader, no audio, or nothing read)."""
        return self._read_start(self.target_analysis, 0, self.target)

    def _read_start(self, an: Analysis, i: int, target: Target | None) -> np.ndarray | None:
        if self.synth.reader is None or an.audio is None:
            return None
        return self.synth.read_start(an.audio[i], self.sample_rate, None if target is None else target.f0)

    @property
    def search_x(self) -> np.ndarray:
        """The current candidate's searchable params in [0, 1], ``[A]`` (a copy)."""
        return self._episode().x[0, self.search_index].copy()

    def _episode(self) -> Episodes:
        if self._ep is None:
            raise SynthenvError("call reset() first")
        return self._ep

    @property
    def current_audio(self) -> np.ndarray | None:
        """The current sound (loudness-normalised), float32 ``[N]``; None if the backend returns no audio."""
        audio = self._episode().current.audio
        return None if audio is None else audio[0]

    # -- batched episode logic, shared with the vector env (synthenv.vector) ---------------------
    def begin_episodes(self, rngs: list[np.random.Generator], options: list[dict]) -> Episodes:
        """Start ``len(rngs)`` episodes: draw each target with its own RNG, render every random
        target and every starting sound in one backend call."""
        spec = self.synth
        b = len(rngs)
        drawn = [self._draw_target(rng, opt) for rng, opt in zip(rngs, options, strict=True)]
        x = np.empty((b, spec.n_params))
        for i, (rng, (target, phys)) in enumerate(zip(rngs, drawn, strict=True)):
            x[i] = spec.normalize(spec.defaults) if self.init == "default" else rng.random(spec.n_params)
            if self._fixed_freq:  # the pitch comes from the target: its params, or its refined pyin estimate
                row = spec.defaults.copy()
                j = spec.index("freq")
                row[j] = phys[j] if phys is not None else pitch_to_param(spec, target.f0 or float("nan"))
                x[i, j] = spec.normalize(row)[j]
        x = np.clip(x, 0.0, 1.0)
        to_render = [i for i, (_, phys) in enumerate(drawn) if phys is not None]
        target_rows = np.array([drawn[i][1] for i in to_render]).reshape(-1, spec.n_params)
        guess = None
        if self.inverse is None:  # starts and targets in one backend call
            rendered = self.backend.render(spec, np.concatenate([spec.denormalize(x), target_rows]))
            targets, target_an = self._targets(drawn, to_render, rendered, b)
            current = self._analyze(rendered, slice(0, b))
        else:  # the model reads the target: targets first, then the starts
            rendered = self.backend.render(spec, target_rows) if to_render else None
            targets, target_an = self._targets(drawn, to_render, rendered, 0)
            n = self.start_renders
            starts = self.inverse.starts(target_an.logmel)[:, :n]  # [B, n, P], the network's best guess first
            guess = starts[:, 0, self.search_index]
            if self.init == "inverse":  # render the starts, begin at the closest
                for i, target in enumerate(targets):  # the patches the synth reads from the sound, first of all
                    read = self._read_start(target_an, i, target)
                    if read is not None:
                        starts[i] = np.vstack([read, starts[i]])[: starts.shape[1]]
                n = starts.shape[1]
                x = np.repeat(x, n, axis=0)
                x[:, self.search_index] = starts[:, :, self.search_index].reshape(b * n, -1)
            current = self._analyze(self.backend.render(spec, spec.denormalize(x)), slice(None))
            if len(x) > b:
                d = distances.compute(self.distance, target_an.take(np.repeat(np.arange(b), n)), current)
                pick = np.arange(b) * n + d.reshape(b, n).argmin(axis=1)
                x, current = x[pick], current.take(pick)
        d = distances.compute(self.distance, target_an, current).astype(np.float64)
        success = d < self.success_threshold  # a start already at the target is a success at reset
        return Episodes(targets, target_an, x, current, d.copy(), d, np.zeros(b, np.int64), success, guess, d.copy())

    def _targets(self, drawn, to_render: list[int], rendered, offset: int) -> tuple[list[Target], Analysis]:
        """The episodes' targets (rendered ones at rows ``offset + j`` of ``rendered``) and their analysis."""
        spec = self.synth
        targets = []
        for i, (target, phys) in enumerate(drawn):
            if phys is not None:
                k = offset + to_render.index(i)
                target = Target(
                    audio=None if rendered.audio is None else rendered.audio[k],
                    frames=None if rendered.frames is None else rendered.frames[k : k + 1],
                    f0=float(phys[spec.index("freq")]) if "freq" in spec.names else None,
                    params=phys,
                    description={"kind": "params", "params": spec.to_dict(phys)},
                )
            targets.append(target)
        missing = [t for t in targets if self.features == "server" and t.frames is None]
        if missing:  # audio-file targets: played through the server's analysis once, then cached
            frames = self.backend.analyze_audio(np.stack([t.audio for t in missing]))
            for t, f in zip(missing, frames, strict=True):
                t.frames = f[None]
        target_an = analyze(
            None if any(t.audio is None for t in targets) else np.stack([t.audio for t in targets]),
            self.sample_rate,
            frames=None if self.features == "audio" else np.concatenate([t.frames for t in targets]),
            source=self.features,
        )
        return targets, target_an

    def advance(self, ep: Episodes, actions: np.ndarray):
        """Apply checked actions ``[B, A]``, render all candidates in one backend call, update ``ep``.
        Returns observations ``[B, D]``, rewards, terminated and truncated ``[B]``."""
        x = ep.x.copy()
        cols = self.search_index
        if self.action_mode == "delta":
            step = self.action_scale * actions
            if self.move_gain:
                step = step + self.move_gain * self.move(ep)
            x[:, cols] = np.clip(x[:, cols] + step, 0.0, 1.0)
        else:
            x[:, cols] = (actions + 1.0) / 2.0
        rendered = self._analyze(self.backend.render(self.synth, self.synth.denormalize(x)), slice(None))
        d = distances.compute(self.distance, ep.target, rendered).astype(np.float64)
        best = ep.d if ep.best is None else ep.best
        if self.step_from == "best":  # keep the closer of the best and the new candidate
            keep = d >= ep.d
            better = np.flatnonzero(~keep)
            x[keep], d[keep] = ep.x[keep], ep.d[keep]
            rendered = ep.current.replace_rows(better, rendered.take(better))
        ep.current = rendered
        if self.reward_mode == "best":  # only a new best counts, by how much it beats the old one
            reward = self.reward(best, np.minimum(best, d), ep.d0)
        else:
            reward = self.reward(ep.d, d, ep.d0)
        ep.best = np.minimum(best, d)
        ep.success = d < self.success_threshold
        reward = reward + self.success_bonus * ep.success
        ep.x, ep.d, ep.move = x, d, None
        ep.steps = ep.steps + 1
        truncated = ~ep.success & (ep.steps >= self.max_steps)
        return self.observe(ep), reward.astype(np.float64), ep.success.copy(), truncated

    def reward(self, d_prev: np.ndarray, d: np.ndarray, d0: np.ndarray) -> np.ndarray:
        """The bounded improvement reward (before the success bonus): ``clip((d_prev - d) / max(d0,
        success_threshold, 1e-6), -1, 1)``."""
        scale = np.maximum(np.maximum(d0, self.success_threshold), 1e-6)
        return np.clip((d_prev - d) / scale, -1.0, 1.0)

    def observe(self, ep: Episodes) -> np.ndarray:
        """Observations ``[B, D]`` float32 (layout in the module doc)."""
        parts = [ep.target.summary, ep.current.summary, ep.x[:, self.search_index]]
        if self.observe_guess:
            parts.append(ep.guess)
        if self.observe_move:
            parts.append(self.move(ep))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def move(self, ep: Episodes) -> np.ndarray:
        """The inverse model's suggested move ``[B, A]`` for the episodes' current sounds (:func:`suggested_move`),
        computed once per step (``observe_move`` shows it, ``move_gain`` follows it)."""
        if ep.move is None:
            ep.move = suggested_move(self.inverse, ep.target.logmel, ep.current.logmel, ep.x, self.search_index)
        return ep.move

    def infos(self, ep: Episodes, rows: range | list[int] | None = None) -> list[dict]:
        """One info dict per episode (see the class doc); with ``metrics``, every distance of the rows
        that need them (all with True; those whose episode just ended with "final"), computed at once."""
        rows = list(range(len(ep.x)) if rows is None else rows)
        with_metrics = self.metric_rows(ep, rows)
        metrics = {}
        if with_metrics:
            sel = np.array(with_metrics)
            metrics = dict(zip(with_metrics, _per_row(distances.compute_all(ep.target.take(sel), ep.current.take(sel))),
                               strict=True))  # fmt: skip
        out = []
        for i in rows:
            t = ep.targets[i]
            info: dict[str, Any] = {
                "distance": float(ep.d[i]),
                "params": self.synth.to_dict(self.synth.denormalize(ep.x[i])),
                "target": copy.deepcopy(t.description),
                "success": bool(ep.success[i]),
                "step": int(ep.steps[i]),
            }
            if i in metrics:
                m = metrics[i]
                if t.params is not None:
                    m["param_mae"] = float(distances.param_mae(self.synth.normalize(t.params), ep.x[i])[0])
                info["metrics"] = m
            out.append(info)
        return out

    def metric_rows(self, ep: Episodes, rows: list[int]) -> list[int]:
        """The rows whose info carries every metric: all with ``metrics=True``, with ``"final"`` those
        whose episode ended on this step (success or the step limit), none by default."""
        if self.metrics is True:
            return list(rows)
        if self.metrics == "final":
            ended = (ep.steps > 0) & (ep.success | (ep.steps >= self.max_steps))
            return [i for i in rows if ended[i]]
        return []

    def render_image(self, ep: Episodes, i: int) -> np.ndarray:
        if self.features == "audio":
            return spectrogram_image(ep.target.logmel[i], ep.current.logmel[i])
        return spectrogram_image(ep.target.frames[i], ep.current.frames[i], span=3.0)

    def score(self, x_search: np.ndarray, ep: Episodes | None = None, row: int = 0,
              freq: np.ndarray | None = None) -> tuple[np.ndarray, Analysis]:  # fmt: skip
        """Distances from episode ``row``'s target to candidates given as searchable params ``[B, A]``
        in [0, 1] (the fixed ones, e.g. ``freq``, as in the episode; or ``freq`` ``[B]``, normalised, for
        each candidate), rendered in one backend call. This is what search baselines spend their render
        budget on. Returns ``([B], analysis)``."""
        ep = ep or self._episode()
        xs = np.clip(np.atleast_2d(np.asarray(x_search, dtype=np.float64)), 0.0, 1.0)
        x = np.tile(ep.x[row], (xs.shape[0], 1))
        x[:, self.search_index] = xs
        if freq is not None:
            if not self._fixed_freq:
                raise SynthenvError("score(freq=...) sets the fixed pitch: only with pitch='target'")
            x[:, self.synth.index("freq")] = np.clip(np.asarray(freq, dtype=np.float64)[: len(x)], 0.0, 1.0)
        an = self._analyze(self.backend.render(self.synth, self.synth.denormalize(x)), slice(None))
        return distances.compute(self.distance, ep.target.take(row), an).astype(np.float64), an

    def score_residuals(self, x_search: np.ndarray, ep: Episodes | None = None, row: int = 0,
                        freq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """:meth:`score` with the distance's residuals (:func:`synthenv.distances.residuals`): ``([B], [B, K])``,
        what the ``cmaes_lm`` search refines on."""
        ep = ep or self._episode()
        d, an = self.score(x_search, ep, row, freq)
        return d, distances.residuals(self.distance, ep.target.take(row), an)

    def fix_pitch(self, freq: float, row: int = 0) -> None:
        """Set the fixed ``freq`` (normalised) of episode ``row``, e.g. to the harmonic of the target's
        pitch where a match found the carrier (:attr:`SynthSpec.carrier_harmonics`)."""
        if not self._fixed_freq:
            raise SynthenvError("fix_pitch() sets the fixed pitch: only with pitch='target'")
        self._episode().x[row, self.synth.index("freq")] = float(np.clip(freq, 0.0, 1.0))

    def full_x(self, x_search: np.ndarray, ep: Episodes | None = None, row: int = 0) -> np.ndarray:
        """All params in [0, 1] of a candidate given by its searchable params (the fixed ones as in the
        episode)."""
        x = (ep or self._episode()).x[row].copy()
        x[self.search_index] = np.clip(x_search, 0.0, 1.0)
        return x

    def full_params(self, x_search: np.ndarray, ep: Episodes | None = None, row: int = 0) -> dict[str, float]:
        """Physical params of a candidate given by its searchable params in [0, 1]."""
        return self.synth.to_dict(self.synth.denormalize(self.full_x(x_search, ep, row)))

    def check_actions(self, action, batched: bool, n: int | None = None) -> np.ndarray:
        """Validate an action (``[A]``, or ``[n, A]`` when batched): float64, clipped to [-1, 1]."""
        expected = (n, *self.action_space.shape) if batched else self.action_space.shape
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action must be an array of shape {expected}, got {action!r}") from None
        if a.shape != expected:
            raise ValueError(
                f"action has shape {a.shape}, expected {expected} "
                f"(one value in [-1, 1] per searchable parameter: {', '.join(self.search_names)})"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"action contains NaN or inf: {a}; the env state is unchanged")
        return np.clip(a, -1.0, 1.0)

    def _draw_target(self, rng: np.random.Generator, options: dict) -> tuple[Target | None, np.ndarray | None]:
        """(an audio target, None) or (None, physical params of a target to render)."""
        spec = self.synth
        if "target_params" in options:
            return None, spec.from_dicts(options["target_params"])[0]
        if self.targets is None:
            return None, spec.denormalize(rng.random(spec.n_params))
        i = options.get("target_index")
        i = int(rng.integers(len(self.targets))) if i is None else int(i)
        if not 0 <= i < len(self.targets):
            raise ValueError(f"target_index {i} out of range: there are {len(self.targets)} targets")
        return self.targets.get(i), None

    def _analyze(self, rendered, rows: slice) -> Analysis:
        audio = None if rendered.audio is None else rendered.audio[rows]
        frames = None if rendered.frames is None else rendered.frames[rows]
        return analyze(audio, self.sample_rate, frames=frames, source=self.features)


@dataclass
class Episodes:
    """The state of B episodes: targets and their analysis, current params ``x [B, P]`` (normalised)
    and analysis, start and current distances, step counts, success flags."""

    targets: list[Target]
    target: Analysis
    x: np.ndarray
    current: Analysis
    d0: np.ndarray
    d: np.ndarray
    steps: np.ndarray
    success: np.ndarray
    guess: np.ndarray | None = None  # the inverse model's guesses [B, A] (init="inverse" or observe_guess)
    best: np.ndarray | None = None  # the best distance of each episode so far [B]
    move: np.ndarray | None = None  # the inverse model's suggested move [B, A] for x (computed on first use)


def check_env_kwargs(**kwargs: Any) -> dict[str, Any]:
    """Check :class:`SoundMatchEnv` keyword arguments without starting anything (no backend, no
    server); :class:`ConfigError` (or the synth's, target's or backend's own error) says what is wrong.
    Returns every argument with defaults filled in: ``features`` and ``distance`` resolved, and
    ``targets`` as :class:`~synthenv.targets.AudioTargets` (files found, not yet loaded) or None."""
    try:
        bound = inspect.signature(SoundMatchEnv.__init__).bind(None, **kwargs)
    except TypeError as exc:
        known = [p for p in inspect.signature(SoundMatchEnv.__init__).parameters if p != "self"]
        raise ConfigError(f"SoundMatchEnv: {exc}; it takes: {', '.join(known)}") from None
    bound.apply_defaults()
    a = dict(bound.arguments)
    del a["self"]
    get_synth(a["synth"])
    _check_choice("action_mode", a["action_mode"], ("delta", "absolute"))
    _check_choice("pitch", a["pitch"], ("target", "search"))
    _check_choice("init", a["init"], ("default", "random", "inverse"))
    _check_choice("reward_mode", a["reward_mode"], ("improvement", "best"))
    _check_choice("step_from", a["step_from"], ("current", "best"))
    for name in ("observe_guess", "observe_move"):
        if not isinstance(a[name], bool):
            raise ConfigError(f"{name} must be True or False, got {a[name]!r}")
    gain = a["move_gain"]
    if isinstance(gain, bool) or not (isinstance(gain, numbers.Real) and np.isfinite(gain) and 0 <= gain <= 1):
        raise ConfigError(f"move_gain must be a number in [0, 1] (normalised units per step), got {gain!r}")
    if gain and a["action_mode"] != "delta":
        raise ConfigError("move_gain adds to delta actions: it needs action_mode='delta'")
    n = a["inverse_starts"]
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"inverse_starts must be a whole number >= 1, got {n!r}")
    if n > 1 and a["init"] != "inverse":
        raise ConfigError("inverse_starts applies to init='inverse' only")
    _check_choice("render_mode", a["render_mode"], (None, *SoundMatchEnv.metadata["render_modes"]))
    _check_choice("metrics", a["metrics"], METRICS_MODES)
    a["features"], a["distance"] = resolve_features(a["backend"], a["features"], a["distance"])
    max_steps, action_scale = a["max_steps"], a["action_scale"]
    if not (isinstance(max_steps, int | np.integer) and not isinstance(max_steps, bool) and max_steps >= 1):
        raise ConfigError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not (isinstance(action_scale, int | float) and np.isfinite(action_scale) and 0 < action_scale <= 1):
        raise ConfigError(f"action_scale must be in (0, 1], got {action_scale!r}")
    for name in ("success_threshold", "success_bonus"):
        value = a[name]
        if value is not None and not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    sample_rate, duration = a["sample_rate"], a["duration"]
    check_backend_args(a["backend"], sample_rate, duration, a["backend_options"])
    if a["features"] == "server" and server_n_frames(int(round(sample_rate * duration))) < N_SEGMENTS:
        raise ConfigError(
            f"duration {duration} s is too short for server features: they need at least "
            f"{N_SEGMENTS * 512 / sample_rate:.3f} s ({N_SEGMENTS} analysis frames of 512 samples)"
        )
    targets = a["targets"]
    a["targets"] = None if _is_random(targets) else AudioTargets(targets, int(sample_rate), float(duration))
    a["inverse"] = None
    if a["init"] == "inverse" or a["observe_guess"] or a["observe_move"] or gain:
        from synthenv.inverse import require_model

        if a["features"] != "audio":
            raise ConfigError("init='inverse', observe_guess, observe_move and move_gain read log-mel: they need "
                              "features='audio' (backend 'numpy' or 'nrt')")  # fmt: skip
        a["inverse"] = require_model(a["inverse_model"], get_synth(a["synth"]).name, sample_rate, duration)
        if n > a["inverse"].max_starts:
            raise ConfigError(f"inverse_starts must be at most {a['inverse'].max_starts} (the starts the inverse model "
                              f"gives: its first guesses and nearest bank rows), got {n}")  # fmt: skip
    elif a["inverse_model"] is not None:
        raise ConfigError("inverse_model is used only with init='inverse', observe_guess, observe_move or move_gain")
    return a


def suggested_move(model, target_logmel: np.ndarray, current_logmel: np.ndarray, x: np.ndarray,
                   cols: np.ndarray) -> np.ndarray:  # fmt: skip
    """The inverse model's suggested move ``[B, len(cols)]`` in [-1, 1] for the params ``cols`` of ``x
    [B, P]`` (normalised): its hypothesis for the target minus its hypothesis for the current sound,
    each the one of its K hypotheses nearest ``x`` in those columns (so both read the same mode of an
    ambiguous sound)."""

    def nearest(logmel: np.ndarray) -> np.ndarray:
        hyp = model.guesses(logmel)[:, :, cols]  # [B, K, A]
        k = np.argmin(np.square(hyp - x[:, None, cols]).sum(axis=2), axis=1)
        return hyp[np.arange(len(x)), k]

    return np.clip(nearest(target_logmel) - nearest(current_logmel), -1.0, 1.0)


def _per_row(metrics: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """``{name: [B]}`` -> B dicts ``{name: float}``."""
    n = len(next(iter(metrics.values()))) if metrics else 0
    return [{k: float(v[j]) for k, v in metrics.items()} for j in range(n)]


def resolve_features(backend: str, features: str | None, distance: str | None) -> tuple[str, str]:
    """The feature source and reward distance an env on ``backend`` uses (defaults filled in), or a
    :class:`ConfigError` when they are unknown or do not fit together."""
    if not isinstance(backend, str) or backend not in DEFAULT_FEATURES:
        raise ConfigError(f"unknown backend {backend!r}; available backends: {', '.join(available_backends())}")
    features = features or DEFAULT_FEATURES[backend]
    _check_choice("features", features, ("audio", "server"))
    if features not in FEATURE_SOURCES[backend]:
        hint = "backend='nrt' or 'live'" if features == "server" else "backend='numpy' or 'nrt'"
        raise ConfigError(f"the {backend} backend has no {features} features: use "
                          f"features={FEATURE_SOURCES[backend][0]!r}, or {hint}")  # fmt: skip
    distance = distance or ("server_l1" if features == "server" else "logmel_l1")
    try:
        needs = distances.get_distance(distance).needs
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if needs != features:
        raise ConfigError(
            f"distance {distance!r} needs {needs} features, but features={features!r};"
            f" choose one of {', '.join(distances.available_distances(features))}"
        )
    return features, distance


def _is_random(targets: Any) -> bool:
    return isinstance(targets, str) and targets == "random"


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if not isinstance(value, str | bool | None) or value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


# -- rgb_array rendering --------------------------------------------------------------------------
_CMAP_ANCHORS = np.array(  # a perceptually ordered dark-blue -> teal -> yellow map (viridis-like)
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float32
)


def colorize(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``values`` to uint8 RGB ``[..., 3]`` between ``lo`` and ``hi``."""
    t = np.clip((np.asarray(values, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0) * (len(_CMAP_ANCHORS) - 1)
    i = np.minimum(t.astype(np.int64), len(_CMAP_ANCHORS) - 2)
    f = (t - i)[..., None]
    return (_CMAP_ANCHORS[i] * (1 - f) + _CMAP_ANCHORS[i + 1] * f).astype(np.uint8)


def spectrogram_image(target: np.ndarray, current: np.ndarray, scale: int = 2, span: float = 60.0) -> np.ndarray:
    """Target (top) and current (bottom) frames ``[T, F]`` (log-mel in dB, or server features) as one
    uint8 ``H x W x 3`` image, low bands at the bottom of each panel, ``span`` of range below the
    louder one's peak."""
    hi = float(max(target.max(), current.max()))
    panels = [colorize(m.T[::-1], hi - span, hi) for m in (target, current)]
    sep = np.full((2, panels[0].shape[1], 3), 255, dtype=np.uint8)
    img = np.concatenate([panels[0], sep, panels[1]], axis=0)
    return np.ascontiguousarray(np.repeat(np.repeat(img, scale, axis=0), scale, axis=1))
