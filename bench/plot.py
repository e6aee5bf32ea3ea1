"""The cost curve as a PNG, drawn with matplotlib: a bench-only dependency (the ``bench`` extra,
installed by ``./dev bench``). Without it the curve is still printed and written to the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

# measure -> (panel title, y label, logarithmic y): the event panel is linear from 0, so that
# a flat cost looks flat.
PANELS = {
    "cold": ("Cold convergence", "ms (read + decide + apply)", True),
    "event": ("Event latency (address -> rule)", "ms, median", False),
    "resync": ("No-op resync", "ms, median", True),
}
Curve = Mapping[str, Mapping[str, Mapping[str, float]]]  # measure -> rules -> who -> ms


def draw_curve(curve: Curve, target: Path) -> Path | None:
    """Draws the three measures against the number of rules (log-log), polroutd beside
    ``ip -batch``; returns the file written, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    measures = [m for m in PANELS if m in curve]
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.8),
                             squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        points = curve[measure]
        sizes = sorted(points, key=int)
        x = [int(s) for s in sizes]
        for who, label, style in (("polroutd_ms", "polroutd", "o-"),
                                  ("ip_batch_ms", "ip -batch", "s--")):
            ax.plot(x, [points[s][who] for s in sizes], style, label=label)
        title, ylabel, logarithmic = PANELS[measure]
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log", base=2)
        if logarithmic:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xticks(x, [str(v) for v in x])
        ax.set_xlabel("rules")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("polroutd: cost against host size (python -m bench --scenario curve)",
                 fontsize=10)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
