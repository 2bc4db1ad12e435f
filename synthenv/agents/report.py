"""Reports: tables with confidence intervals, learning curves and spectrogram comparisons."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def mean_ci(values, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float, float]:
    """Mean, median and a 95% confidence interval of the mean (``scipy.stats.bootstrap``, BCa, ``n_boot``
    resamples, seeded). With fewer than two values, or all values equal, the interval is the mean itself."""
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (float("nan"),) * 4
    mean, median = float(v.mean()), float(np.median(v))
    if v.size < 2 or np.all(v == v[0]):
        return mean, median, mean, mean
    res = bootstrap((v,), np.mean, n_resamples=n_boot, confidence_level=0.95, method="BCa",
                    random_state=np.random.default_rng(seed))  # fmt: skip
    lo, hi = res.confidence_interval
    return mean, median, float(lo), float(hi)


def markdown_table(results: dict[str, dict[str, list[float]]], metrics: list[str]) -> str:
    """``results[method][metric] = [per-target values]`` -> a markdown table (mean [95% CI], median)."""
    lines = ["| method | " + " | ".join(f"{m} mean [95% CI] | {m} median" for m in metrics) + " |",
             "| --- |" + " ---: | ---: |" * len(metrics)]  # fmt: skip
    for method, per_metric in results.items():
        cells = []
        for m in metrics:
            mean, median, lo, hi = mean_ci(per_metric.get(m, []))
            cells += [f"{mean:.3f} [{lo:.3f}, {hi:.3f}]", f"{median:.3f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figure(**kwargs):
    """A figure drawn without pyplot: no GUI backend is needed and the caller's backend (a notebook's
    inline one, say) is left alone."""
    from matplotlib.figure import Figure

    return Figure(dpi=100, **kwargs)


def learning_curve_png(eval_csv: str | Path, out: str | Path, title: str = "learning curve",
                       baselines: dict[str, float] | None = None) -> Path:  # fmt: skip
    """Held-out mean best distance against timesteps (from ``eval.csv``), with baseline lines."""
    rows = list(csv.DictReader(open(eval_csv)))
    fig = _figure(figsize=(6, 3.5))
    ax = fig.subplots()
    if rows:
        ax.plot([int(r["timesteps"]) for r in rows], [float(r["mean_best_distance"]) for r in rows], "o-",
                label="policy (held-out targets)")  # fmt: skip
    for i, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", color=f"C{i + 1}", label=name)
    ax.set_xlabel("training timesteps")
    ax.set_ylabel("mean best distance")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    return Path(out)


def comparison_png(target_logmel: np.ndarray, match_logmel: np.ndarray, out: str | Path, title: str = "",
                   sample_rate: int = 22050, hop: int = 256) -> Path:  # fmt: skip
    """Target and match log-mel spectrograms (``[T, M]`` dB) side by side."""
    fig = _figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    hi = float(max(target_logmel.max(), match_logmel.max()))
    t_end = target_logmel.shape[0] * hop / sample_rate
    for ax, data, name in zip(axes, (target_logmel, match_logmel), ("target", "match"), strict=True):
        im = ax.imshow(data.T, origin="lower", aspect="auto", vmin=hi - 80, vmax=hi, cmap="magma",
                       extent=(0, t_end, 0, data.shape[1]))  # fmt: skip
        ax.set_title(name)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("mel band")
    fig.colorbar(im, ax=axes, label="dB")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(out)
    return Path(out)


def write_train_report(run: Path, config: dict, final: float, seconds: float) -> None:
    rows = list(csv.DictReader(open(run / "eval.csv")))
    report = {
        "config": config,
        "seconds": round(seconds, 1),
        "final_mean_best_distance": final,
        "eval_budget": config["eval_budget"],
        "evaluations": rows,
    }
    (run / "report.json").write_text(json.dumps(report, indent=2))
    md = [f"# Training report: {config['env']['synth']} on {config['env']['backend']}", "",
          f"- algorithm: {config['algo']}, {config['n_envs']} envs, {config['total_timesteps']} timesteps, "
          f"seed {config['seed']}",
          f"- wall time: {seconds:.0f} s",
          f"- held-out mean best distance at {config['eval_budget']} renders: {final:.3f}", "",
          "| timesteps | seconds | mean best distance | median |", "| ---: | ---: | ---: | ---: |"]  # fmt: skip
    md += [
        f"| {r['timesteps']} | {r['seconds']} | {r['mean_best_distance']} | {r['median_best_distance']} |" for r in rows
    ]
    md += ["", "![learning curve](learning_curve.png)"]
    (run / "report.md").write_text("\n".join(md) + "\n")
