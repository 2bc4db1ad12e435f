"""Inverse models ("timbre transfer"): a sound's log-mel frames -> ranked guesses of a synth's params.

An :class:`InverseModel` maps the log-mel frames of :func:`synthenv.features.analyze` (what the env,
the search and ``synthenv dataset`` compute) to ``K`` hypotheses of the synth's normalised params
and a score per hypothesis; :meth:`InverseModel.guesses` returns them best-ranked first. A match
renders the first few and refines the closest (``synthenv match --init inverse``); the env can start
episodes at the first (``SoundMatchEnv(init="inverse")``).

Why ``K`` hypotheses: synth inversion is not a function. Inert parameters (``ratio`` when FM's
``index`` is 0, a filter's resonance far above the partials) and symmetric ones (two detuned
oscillators swapped) give equal sounds from different params, and a network trained with a plain
parameter loss is punished for choosing any one of them, so it predicts their average, which may
sound like none. The loss here is the *multiple-choice* loss (min over hypotheses of each one's
error, plus a small share of the mean so that every hypothesis learns): a hypothesis that lands on
one of the equivalent settings is not punished for the others, and the render decides between them.
A second head scores the hypotheses (trained to predict which one wins), so one render picks the
best-scored one.

Why a bank of neighbours too: a network is only as good as its inputs are like its training data.
On real recordings (sounds the synth cannot make exactly) the network's guesses were no closer than
a handful of random patches (fm on 20 General MIDI notes, ``audible`` with its earlier hard floor:
16.4 dB for the closest of its first four guesses, 15.5 for the best of 8 Latin-hypercube patches),
while the rendered dataset rows nearest to the recording in a 32-dimensional PCA of the same inputs
were as close as the best of 50-200 random patches (12.96 dB for the closest of 8). So the model also carries
:data:`BANK_ROWS` training rows (PCA embeddings in int8, params in uint8: a few MB), and
:meth:`InverseModel.starts` interleaves the network's guesses with the nearest bank rows: in domain
the network is the better guide, out of domain the bank is.

Training uses torch (``synthenv fit-inverse``, the ``[train]`` extra); a trained model is saved as one
``.npz`` (weights in float16 plus a JSON header, loaded with ``allow_pickle=False``) and predicts in
numpy: the shipped models (``synthenv/data/inverse/<synth>.npz``) work without torch, on every backend.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from synthenv.errors import ConfigError

FORMAT = "synthenv-inverse"
FORMAT_VERSION = 1
#: input: log-mel frames averaged in groups of POOL (about 46 ms at 22,050 Hz), each sound floored
#: RANGE_DB below its own peak and scaled to [0, 1]; the peak's level (the sound's crest) is one more input
POOL = 4
RANGE_DB = 80.0
DEFAULT_HYPOTHESES = 8
DEFAULT_HIDDEN = 512
#: weight of the mean over hypotheses in the multiple-choice loss (the min carries the rest)
MEAN_SHARE = 0.05
SHIPPED_DIR = "data/inverse"
#: the neighbour bank: rows kept, PCA dimensions of their embedding
BANK_ROWS = 50_000
BANK_DIMS = 32
#: starts of a match by default: the network's first guesses and the bank's nearest rows, interleaved
NET_STARTS = 4
BANK_STARTS = 12


def model_input(logmel: np.ndarray) -> np.ndarray:
    """``[B, T, M]`` log-mel frames (dB) -> float32 ``[B, ceil(T / POOL) * M + 1]`` network inputs."""
    lm = np.asarray(logmel, dtype=np.float32)
    if lm.ndim == 2:
        lm = lm[None]
    b, t, m = lm.shape
    peak = lm.reshape(b, -1).max(axis=1)
    z = (np.maximum(lm, (peak - RANGE_DB)[:, None, None]) - peak[:, None, None]) / RANGE_DB + 1.0
    pad = (-t) % POOL
    if pad:
        z = np.concatenate([z, np.repeat(z[:, -1:], pad, axis=1)], axis=1)
    pooled = z.reshape(b, -1, POOL, m).mean(axis=2).reshape(b, -1)
    return np.concatenate([pooled, (peak[:, None] + 20.0) / 20.0], axis=1).astype(np.float32)


@dataclass
class InverseModel:
    """A trained inverse model: weights and what they were trained on (``meta``)."""

    meta: dict
    weights: dict[str, np.ndarray]

    @property
    def synth(self) -> str:
        return self.meta["synth"]

    @property
    def param_names(self) -> list[str]:
        return list(self.meta["param_names"])

    @property
    def hypotheses(self) -> int:
        return int(self.meta["hypotheses"])

    @property
    def max_starts(self) -> int:
        """How many starts :meth:`starts` gives at most: the network's first guesses and the bank's rows."""
        bank = len(self.weights["bank_e"]) if "bank_e" in self.weights else 0
        return min(NET_STARTS, self.hypotheses) + min(BANK_STARTS, bank)

    def check_fits(self, synth, sample_rate: int, duration: float) -> None:
        """A :class:`ConfigError` unless the model was trained on this synth's params at this sample
        rate and duration (its input size depends on both)."""
        from synthenv.synths import get_synth

        spec = get_synth(synth)
        if spec.name != self.synth or spec.names != self.param_names:
            raise ConfigError(
                f"the inverse model was trained on {self.synth!r} ({', '.join(self.param_names)}), not on "
                f"{spec.name!r} ({', '.join(spec.names)})"
            )
        if int(sample_rate) != self.meta["sample_rate"] or abs(float(duration) - self.meta["duration"]) > 1e-9:
            raise ConfigError(
                f"the inverse model for {self.synth!r} reads {self.meta['duration']:g} s at "
                f"{self.meta['sample_rate']} Hz, "
                f"not {float(duration):g} s at {int(sample_rate)} Hz: train one on a dataset of these settings "
                "(synthenv dataset --sample-rate/--duration, then synthenv fit-inverse)"
            )

    def predict(self, logmel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[B, T, M]`` log-mel -> (hypotheses ``[B, K, P]`` in [0, 1], scores ``[B, K]``), numpy only."""
        x = model_input(logmel)
        if x.shape[1] != self.meta["n_inputs"]:
            raise ConfigError(
                f"the inverse model for {self.synth!r} reads {self.meta['n_frames']} log-mel frames; got "
                f"{np.asarray(logmel).shape[-2]} (another duration or sample rate)"
            )
        w = self.weights
        h = (x - w["in_mean"]) / w["in_std"]
        for i in range(self.meta["layers"]):
            h = h @ w[f"w{i}"].T + w[f"b{i}"]
            mu = h.mean(axis=1, keepdims=True)
            var = h.var(axis=1, keepdims=True)
            h = (h - mu) / np.sqrt(var + 1e-5) * w[f"g{i}"] + w[f"beta{i}"]
            h = _gelu(h)
        k, p = self.hypotheses, len(self.param_names)
        out = 1.0 / (1.0 + np.exp(-(h @ w["w_out"].T + w["b_out"])))
        scores = h @ w["w_score"].T + w["b_score"]
        return out.reshape(-1, k, p), scores

    def guesses(self, logmel: np.ndarray) -> np.ndarray:
        """Hypotheses ``[B, K, P]`` (normalised params), best-scored first."""
        hyp, scores = self.predict(logmel)
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(hyp, order[:, :, None], axis=1)

    def neighbours(self, logmel: np.ndarray, n: int) -> np.ndarray:
        """The params ``[B, n, P]`` (normalised) of the ``n`` bank rows nearest to each sound (Euclidean
        distance between PCA embeddings of the network inputs), nearest first."""
        w = self.weights
        x = model_input(logmel)
        if "bank_e" not in w:
            return np.empty((len(x), 0, len(self.param_names)))
        e = self._embed(x)  # [B, C]
        bank = w["bank_e"].astype(np.float32) * w["bank_scale"]
        d = (bank**2).sum(axis=1)[None, :] - 2.0 * e @ bank.T  # + |e|^2, the same for every row
        n = min(n, len(bank))
        idx = np.argpartition(d, n - 1, axis=1)[:, :n] if n < len(bank) else np.tile(np.arange(n), (len(e), 1))
        idx = np.take_along_axis(idx, np.argsort(np.take_along_axis(d, idx, axis=1), axis=1, kind="stable"), axis=1)
        return w["bank_p"][idx].astype(np.float64) / 255.0

    def _embed(self, x: np.ndarray) -> np.ndarray:
        return (x - self.weights["bank_mu"]) @ self.weights["bank_w"].T

    def starts(self, logmel: np.ndarray, n_net: int = NET_STARTS, n_bank: int = BANK_STARTS) -> np.ndarray:
        """Where a search starts: the network's first ``n_net`` guesses and the ``n_bank`` nearest bank
        rows, interleaved by rank (guess 1, neighbour 1, guess 2, ...), ``[B, n_net + n_bank, P]``."""
        g = self.guesses(logmel)[:, :n_net]
        nb = self.neighbours(logmel, n_bank)
        cols, i = [], 0
        while i < max(g.shape[1], nb.shape[1]):
            cols += [a[:, i] for a in (g, nb) if i < a.shape[1]]
            i += 1
        return np.stack(cols, axis=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = np.frombuffer(json.dumps(self.meta, sort_keys=True).encode(), dtype=np.uint8)
        arrays = {k: v if v.dtype.kind in "iu" else v.astype(np.float16 if v.ndim == 2 else np.float32)
                  for k, v in self.weights.items()}  # fmt: skip
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, __meta__=header, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> InverseModel:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"inverse model not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["__meta__"]).decode())
                weights = {k: data[k] if data[k].dtype.kind in "iu" else data[k].astype(np.float32)
                           for k in data.files if k != "__meta__"}  # fmt: skip
        except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, json.JSONDecodeError,
                zipfile.BadZipFile) as exc:  # fmt: skip
            raise ConfigError(f"{path} is not a synthenv inverse model ({type(exc).__name__}: {exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a synthenv inverse model")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ConfigError(f"{path} needs a newer synthenv (model format {meta['format_version']})")
        missing = [k for k in _META_KEYS if k not in meta]
        layers = meta.get("layers", 0) if isinstance(meta.get("layers"), int) else 0
        missing += [k for k in _weight_keys(layers) if k not in weights]
        if missing:
            raise ConfigError(f"{path} is an incomplete synthenv inverse model (missing {', '.join(missing)})")
        return cls(meta, weights)


_META_KEYS = ("synth", "param_names", "sample_rate", "duration", "n_frames", "n_inputs", "hypotheses", "layers")


def _weight_keys(layers: int) -> list[str]:
    """The arrays every model file holds (the bank's are optional)."""
    keys = ["in_mean", "in_std", "w_out", "b_out", "w_score", "b_score"]
    for i in range(layers):
        keys += [f"w{i}", f"b{i}", f"g{i}", f"beta{i}"]
    return keys


def _gelu(x: np.ndarray) -> np.ndarray:
    """torch's GELU(approximate="tanh")."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def n_starts(budget: int, model: InverseModel | None = None) -> int:
    """How many of an inverse model's starts (:meth:`InverseModel.starts`: its guesses and nearest bank
    rows, interleaved) a search with ``budget`` renders spends first: 16 (or what ``model`` gives, if
    fewer), at most a third of the budget, at least one."""
    most = NET_STARTS + BANK_STARTS if model is None else model.max_starts
    return int(min(most, max(1, budget // 3)))


def first_starts(model: InverseModel, logmel: np.ndarray, n: int, read: np.ndarray | None = None) -> np.ndarray:
    """The first ``n`` (at least one) of ``model``'s starts for one target's log-mel ``[1, T, M]``: ``[n, P]``
    normalised, every parameter, the best-scored guess first; ``read`` (the patches read from the sound,
    :meth:`SynthSpec.read_start`, ``[R, P]``) first of all when given."""
    starts = model.starts(logmel)[0]
    if read is not None:
        starts = np.vstack([np.atleast_2d(read), starts])
    return starts[: max(1, n)]


def search_starts(model: InverseModel, logmel: np.ndarray, search_index: np.ndarray, n: int,
                  read: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """:func:`first_starts` in the searchable columns ``search_index``: ``[n, A]``."""
    return first_starts(model, logmel, n, read)[:, search_index]


def shipped_model_path(synth: str) -> Path | None:
    """The pretrained model that ships for a built-in synth, or None."""
    path = Path(str(resources.files("synthenv") / SHIPPED_DIR / f"{synth}.npz"))
    return path if path.is_file() else None


_LOADED: dict[str, InverseModel] = {}


def load_model(model: str | Path | InverseModel | None, synth: str) -> InverseModel | None:
    """``model`` (a path or a loaded model), or the shipped one for ``synth`` when ``model`` is None
    (None when there is none)."""
    if isinstance(model, InverseModel):
        return model
    path = Path(model) if model is not None else shipped_model_path(synth)
    if path is None:
        return None
    key = str(path.resolve())
    if key not in _LOADED:
        _LOADED[key] = InverseModel.load(path)
    return _LOADED[key]


def require_model(model: str | Path | InverseModel | None, synth: str, sample_rate: int, duration: float
                  ) -> InverseModel:  # fmt: skip
    """Like :func:`load_model`, but a clear error when ``synth`` has no model or the model does not fit
    ``synth`` at ``sample_rate`` and ``duration`` (:meth:`InverseModel.check_fits`)."""
    m = load_model(model, synth)
    if m is None:
        raise ConfigError(
            f"no inverse model for synth {synth!r}: train one (synthenv dataset --synth {synth} -o DATA, then "
            f"synthenv fit-inverse --data DATA -o MODEL.npz) and pass it with --inverse-model MODEL.npz"
        )
    m.check_fits(synth, sample_rate, duration)
    return m


# -- training (torch) ----------------------------------------------------------------------------


def _torch_net(n_in: int, hidden: int, layers: int, k: int, p: int):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks, width = [], n_in
            for _ in range(layers):
                blocks += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU(approximate="tanh")]
                width = hidden
            self.trunk = nn.Sequential(*blocks)
            self.out = nn.Linear(hidden, k * p)
            self.score = nn.Linear(hidden, k)
            self.register_buffer("in_mean", torch.zeros(n_in))
            self.register_buffer("in_std", torch.ones(n_in))

        def forward(self, x):
            h = self.trunk((x - self.in_mean) / self.in_std)
            return torch.sigmoid(self.out(h)).view(-1, k, p), self.score(h)

    return Net()


def multiple_choice_loss(hyp, scores, target, mean_share: float = MEAN_SHARE):
    """(loss, per-row winner index): ``min_k e_k + mean_share * mean_k e_k`` with ``e_k`` the mean
    absolute error of hypothesis ``k`` over the params, plus the cross-entropy of the scores against
    the winner (so the best-scored hypothesis is the one to render first)."""
    import torch.nn.functional as F

    err = (hyp - target[:, None, :]).abs().mean(dim=2)  # [B, K]
    best, winner = err.min(dim=1)
    loss = best.mean() + mean_share * err.mean() + 0.1 * F.cross_entropy(scores, winner)
    return loss, winner


def _weights_from(net) -> dict[str, np.ndarray]:
    from torch import nn

    w = {"in_mean": net.in_mean.numpy().copy(), "in_std": net.in_std.numpy().copy()}
    linears = [m for m in net.trunk if isinstance(m, nn.Linear)]
    norms = [m for m in net.trunk if isinstance(m, nn.LayerNorm)]
    for i, (lin, ln) in enumerate(zip(linears, norms, strict=True)):
        w[f"w{i}"], w[f"b{i}"] = lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()
        w[f"g{i}"], w[f"beta{i}"] = ln.weight.detach().numpy().copy(), ln.bias.detach().numpy().copy()
    w["w_out"], w["b_out"] = net.out.weight.detach().numpy().copy(), net.out.bias.detach().numpy().copy()
    w["w_score"], w["b_score"] = net.score.weight.detach().numpy().copy(), net.score.bias.detach().numpy().copy()
    return w


def fit(
    data: str | Path,
    output: str | Path,
    *,
    epochs: int = 20,
    hypotheses: int = DEFAULT_HYPOTHESES,
    hidden: int = DEFAULT_HIDDEN,
    layers: int = 3,
    batch_size: int = 512,
    lr: float = 2e-3,
    holdout: float = 0.05,
    seed: int = 0,
    eval_renders: int = 256,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train an inverse model on the dataset folder ``data`` (from ``synthenv dataset``), save it to
    ``output`` (``.npz``) and return its report: held-out parameter MAE, and the spectral distance of
    its guesses rendered on the dataset's backend (one render: the best-scored guess; ``K`` renders:
    the closest of all), next to the closest of ``K`` random patches."""
    from synthenv import dataset as D
    from synthenv.progress import progress_bar

    log = log or (lambda msg: print(msg, file=sys.stderr))
    for name, value, lo in (("epochs", epochs, 1), ("hypotheses", hypotheses, 1), ("hidden", hidden, 8),
                            ("layers", layers, 1), ("batch_size", batch_size, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ConfigError(f"{name} must be a whole number >= {lo}, got {value!r}")
    if not 0.0 < holdout < 0.5:
        raise ConfigError(f"holdout must be a fraction in (0, 0.5), got {holdout!r}")
    if isinstance(eval_renders, bool) or not isinstance(eval_renders, int) or eval_renders < 1:
        raise ConfigError(f"eval_renders must be a whole number >= 1, got {eval_renders!r}")
    folder = Path(data)
    manifest_path = folder / D.MANIFEST
    if not manifest_path.is_file():
        raise ConfigError(f"{folder} holds no dataset ({D.MANIFEST} not found): write one with synthenv dataset")
    manifest = D._read_manifest(folder)
    if not manifest.get("shards"):
        raise ConfigError(f"the dataset in {folder} has no finished shard yet")
    if not manifest.get("complete"):
        log(f"{folder}: the dataset is incomplete; training on its {sum(r['rows'] for r in manifest['shards'])} rows")
    from synthenv.synths import get_synth

    spec = get_synth(manifest["synth"])
    if spec.names != manifest["param_names"]:
        raise ConfigError(f"the dataset's {manifest['synth']!r} params ({manifest['param_names']}) differ from this "
                          f"synthenv's ({spec.names}): write the dataset again")  # fmt: skip
    try:
        import torch
    except ImportError:
        raise ConfigError('synthenv fit-inverse needs torch: pip install "synthenv[train]"') from None

    t0 = time.time()
    cols = D.load(folder, ["params_norm", "logmel"])
    y_all = cols["params_norm"].astype(np.float32)
    x_all = np.concatenate([model_input(cols["logmel"][a : a + 4096]) for a in range(0, len(y_all), 4096)])
    logmel_shape = cols["logmel"].shape[1:]
    held_out = (cols["params_norm"][-eval_renders:].copy(), cols["logmel"][-eval_renders:].copy())  # for the report
    del cols
    n = len(y_all)
    n_val = max(1, int(round(n * holdout)))
    if n - n_val < batch_size:
        raise ConfigError(
            f"the dataset has {n} rows: too few to train (at least {batch_size + n_val} for these settings)"
        )
    x_tr, y_tr, x_val, y_val = x_all[:-n_val], y_all[:-n_val], x_all[-n_val:], y_all[-n_val:]
    log(f"{spec.name}: {len(x_tr)} training rows, {n_val} held out; inputs {x_tr.shape[1]} ({logmel_shape[0]} "
        f"frames x {logmel_shape[1]} bands, pooled by {POOL}); loaded in {time.time() - t0:.0f} s")  # fmt: skip

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    k, p = hypotheses, spec.n_params
    net = _torch_net(x_tr.shape[1], hidden, layers, k, p)
    net.in_mean.copy_(torch.from_numpy(x_tr.mean(axis=0)))
    net.in_std.copy_(torch.from_numpy(x_tr.std(axis=0) + 1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = len(x_tr) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val)
    history = []
    bar = progress_bar(epochs * steps_per_epoch, f"fit-inverse {spec.name}", "batch", progress)
    try:
        for epoch in range(epochs):
            net.train()
            perm = torch.randperm(len(xt), generator=gen)
            total = 0.0
            for i in range(steps_per_epoch):
                idx = perm[i * batch_size : (i + 1) * batch_size]
                hyp, sc = net(xt[idx])
                loss, _ = multiple_choice_loss(hyp, sc, yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
                bar.update(1)
            net.eval()
            with torch.no_grad():
                hyp, sc = net(xv)
                val, _ = multiple_choice_loss(hyp, sc, yv)
            history.append({"epoch": epoch + 1, "train_loss": total / steps_per_epoch, "holdout_loss": float(val)})
    finally:
        bar.close()
    log(f"trained {epochs} epochs in {time.time() - t0:.0f} s; loss {history[0]['train_loss']:.4f} -> "
        f"{history[-1]['train_loss']:.4f} (held out {history[-1]['holdout_loss']:.4f})")  # fmt: skip

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "synth": spec.name,
        "param_names": spec.names,
        "sample_rate": manifest["sample_rate"],
        "duration": manifest["duration"],
        "n_frames": int(logmel_shape[0]),
        "n_mels": int(logmel_shape[1]),
        "n_inputs": int(x_tr.shape[1]),
        "input": f"log-mel floored {RANGE_DB:g} dB below each sound's peak, scaled to [0, 1], averaged over "
        f"{POOL} frames; plus (peak dB + 20) / 20",
        "pool": POOL,
        "range_db": RANGE_DB,
        "hypotheses": k,
        "hidden": hidden,
        "layers": layers,
        "loss": f"multiple choice: min_k MAE_k + {MEAN_SHARE} mean_k MAE_k + 0.1 cross-entropy(scores, winner)",
        "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "rows": len(x_tr),
                     "holdout_rows": n_val, "seconds": round(time.time() - t0, 1), "history": history},
        "dataset": {"path": str(folder), "backend": manifest["backend"], "seed": manifest["seed"],
                    "n_rows": n, "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest()},
        "reproduce": _reproduce(manifest, n, epochs, k, hidden, layers, seed),
    }  # fmt: skip
    model = InverseModel(meta, {**_weights_from(net), **_bank(x_tr, y_tr, seed)})
    # the report is measured with the saved (float16) weights through the numpy forward pass
    model.save(output)
    model = InverseModel.load(output)
    m = min(eval_renders, n_val)
    report = evaluate_model(model, held_out[0][-m:], held_out[1][-m:], manifest=manifest, seed=seed)
    model.meta["report"] = report
    model.save(output)
    _LOADED.pop(str(Path(output).resolve()), None)
    log(format_report(report))
    return model.meta


def _bank(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The neighbour bank of :data:`BANK_ROWS` training rows: a PCA (fit on up to 20,000 rows) of the
    network inputs to :data:`BANK_DIMS` dimensions, embeddings in int8 (one scale per dimension), and
    the rows' normalised params in uint8 (steps of 1/255)."""
    rows = np.random.default_rng(seed).permutation(len(x))[:BANK_ROWS]
    xb = x[rows]
    mu = xb.mean(axis=0)
    _, _, vt = np.linalg.svd(xb[:20_000] - mu, full_matrices=False)
    w = vt[:BANK_DIMS].astype(np.float16).astype(np.float32)  # as it is stored
    e = (xb - mu) @ w.T
    scale = np.abs(e).max(axis=0) / 127.0 + 1e-12
    return {"bank_mu": mu.astype(np.float32), "bank_w": w, "bank_scale": scale.astype(np.float32),
            "bank_e": np.round(e / scale).astype(np.int8),
            "bank_p": np.round(y[rows] * 255).astype(np.uint8)}  # fmt: skip


def _reproduce(manifest: dict, n: int, epochs: int, k: int, hidden: int, layers: int, seed: int) -> str:
    """The commands that write this dataset and train this model again."""
    extra = ""
    if manifest["sample_rate"] != 22050:
        extra += f" --sample-rate {manifest['sample_rate']}"
    if manifest["duration"] != 1.0:
        extra += f" --duration {manifest['duration']:g}"
    fit_extra = "" if layers == 3 else f" (layers={layers}: synthenv.inverse.fit)"
    return (f"synthenv dataset --synth {manifest['synth']} --n {n} --backend {manifest['backend']} --seed "
            f"{manifest['seed']}{extra} -o DATA && synthenv fit-inverse --data DATA --epochs {epochs} --hypotheses {k} "
            f"--hidden {hidden} --seed {seed} -o MODEL.npz{fit_extra}")  # fmt: skip


def evaluate_model(model: InverseModel, params_norm: np.ndarray, logmel: np.ndarray, *, manifest: dict,
                   seed: int = 0) -> dict:  # fmt: skip
    """Held-out report of ``model`` on dataset rows (their normalised params ``[n, P]`` and log-mel
    ``[n, T, M]``): parameter MAE (best-scored guess, and the closest of the K), and log-mel distances
    of the rendered guesses on the dataset's backend, next to the best of K random patches."""
    from synthenv import distances
    from synthenv.backends import make_backend
    from synthenv.features import analyze
    from synthenv.synths import get_synth

    spec = get_synth(model.synth)
    n = len(params_norm)
    y = params_norm.astype(np.float64)
    g = model.guesses(logmel.astype(np.float32))  # [n, K, P]
    k = g.shape[1]
    mae_top = np.abs(g[:, 0] - y).mean(axis=0)
    mae_best = np.abs(g - y[:, None]).mean(axis=2).min(axis=1).mean()
    rng = np.random.default_rng(seed)
    rand = rng.random((n, k, spec.n_params))
    be = make_backend(manifest["backend"], sample_rate=manifest["sample_rate"], duration=manifest["duration"])
    try:
        target = analyze(be.render(spec, spec.denormalize(y)).audio, be.sample_rate)
        out = {}
        nb = model.neighbours(logmel.astype(np.float32), k)
        for label, cand in (("guess", g), ("bank", nb), ("random", rand)):
            cand = cand.copy()
            if "freq" in spec.names:  # the pitch is the target's, as in a match
                j = spec.index("freq")
                cand[:, :, j] = y[:, None, j]
            flat = cand.reshape(-1, spec.n_params)
            an = analyze(be.render(spec, spec.denormalize(flat)).audio, be.sample_rate)
            ref = target.take(np.repeat(np.arange(n), k))
            for dist in ("logmel_l1", "audible"):
                d = distances.compute(dist, ref, an).reshape(n, k)
                out[f"{label}_{dist}_first"] = float(d[:, 0].mean())
                out[f"{label}_{dist}_best_of_{k}"] = float(d.min(axis=1).mean())
    finally:
        be.close()
    return {
        "holdout_rows": n,
        "param_mae_first": float(mae_top.mean()),
        "param_mae_first_per_param": dict(zip(spec.names, map(float, mae_top), strict=True)),
        f"param_mae_best_of_{k}": float(mae_best),
        "param_mae_random": float(np.abs(rand[:, 0] - y).mean()),
        **out,
    }


def format_report(r: dict) -> str:
    k = next(int(key.rsplit("_", 1)[1]) for key in r if key.startswith("param_mae_best_of_"))
    lines = [
        f"held out ({r['holdout_rows']} rows): param MAE {r['param_mae_first']:.3f} (best-scored guess), "
        f"{r[f'param_mae_best_of_{k}']:.3f} (closest of {k}), random {r['param_mae_random']:.3f}",
    ]
    for dist in ("logmel_l1", "audible"):
        lines.append(
            f"  {dist}: guess {r[f'guess_{dist}_first']:.2f} dB (1 render), {r[f'guess_{dist}_best_of_{k}']:.2f} "
            f"({k} renders); nearest bank row {r[f'bank_{dist}_first']:.2f}, closest of {k} "
            f"{r[f'bank_{dist}_best_of_{k}']:.2f}; random {r[f'random_{dist}_first']:.2f}, best of {k} random "
            f"{r[f'random_{dist}_best_of_{k}']:.2f}"
        )
    return "\n".join(lines)
