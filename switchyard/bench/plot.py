"""Latency plots for benchmark results (matplotlib, optional: without it, no PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def latency_plot(latencies_ms: Sequence[float], title: str, path: Path) -> Path | None:
    """A histogram and the cumulative distribution of latencies; None if matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not latencies_ms:
        return None
    ordered = sorted(latencies_ms)
    figure, (histogram, cumulative) = plt.subplots(1, 2, figsize=(11, 4))
    histogram.hist(ordered, bins=60, color="#3b7dd8")
    histogram.set_xlabel("milliseconds")
    histogram.set_ylabel("count")
    histogram.set_title("distribution")
    shares = [(i + 1) / len(ordered) for i in range(len(ordered))]
    cumulative.plot(ordered, shares, color="#d8573b")
    for quantile in (0.5, 0.95, 0.99):
        value = ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]
        cumulative.axvline(value, linestyle=":", color="grey")
        cumulative.annotate(f"p{round(quantile * 100)} {value:.0f} ms", (value, quantile))
    cumulative.set_xlabel("milliseconds")
    cumulative.set_ylabel("share of payments")
    cumulative.set_title("cumulative")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def quantile(ordered: Sequence[float], share: float) -> float:
    """The value below which `share` of the (sorted) samples fall."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
