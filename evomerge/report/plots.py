"""The report's plots, drawn with matplotlib's Agg backend and returned as PNG bytes.

Each function takes the report's data and gives one figure; none opens a window or
touches the network.

>>> # png = progress_plot(data)   # PNG bytes, for html.embed_png
"""

from __future__ import annotations

import io
import math

from evomerge.merge.routing import Routing
from evomerge.report.coefficients import LayerGrid
from evomerge.report.data import CampaignData
from evomerge.space.bound import model_labels

FAILED_COLOR, OK_COLOR, BEST_COLOR, FRONT_COLOR = "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"


def _figure(width: float, height: float, rows: int = 1, cols: int = 1):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _best_so_far(values: list[float | None], maximize: bool) -> list[float | None]:
    best, out = None, []
    for v in values:
        if v is not None and (best is None or (v > best if maximize else v < best)):
            best = v
        out.append(best)
    return out


def progress_plot(data: CampaignData) -> bytes:
    """The first objective of every evaluation and the best so far, against the number
    of evaluations and against wall time since the first one started."""
    name, direction = data.objectives.names[0], data.objectives.directions[0]
    done = data.evaluated
    values = [t.fitness.objectives.get(name) if t.fitness and t.fitness.is_ok else None
              for t in done]
    best = _best_so_far(values, direction == "maximize")
    starts = [t.started for t in data.trials if t.started is not None]
    origin = min(starts) if starts else None
    seconds = [(t.finished - origin).total_seconds() for t in done]
    unit, scale = _time_unit(max(seconds, default=0.0))
    fig, (by_count, by_time) = _figure(11, 3.6, 1, 2)
    for ax, xs, label in ((by_count, list(range(1, len(done) + 1)), "evaluations"),
                          (by_time, [s / scale for s in seconds],
                           f"wall time ({unit} since the first start)")):
        ok = [(x, v) for x, v in zip(xs, values) if v is not None]
        if ok:
            ax.scatter(*zip(*ok), s=14, color=OK_COLOR, alpha=0.6, label="candidate")
        failed = [x for x, v in zip(xs, values) if v is None]
        if failed:
            ax.scatter(failed, [_floor(values)] * len(failed), marker="x", color=FAILED_COLOR,
                       label="failed")
        steps = [(x, b) for x, b in zip(xs, best) if b is not None]
        if steps:
            ax.step(*zip(*steps), where="post", color=BEST_COLOR, label="best so far")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{name} ({direction})")
        if ax is by_count:
            _whole_numbers(ax)
        ax.grid(alpha=0.3)
    by_count.legend(loc="best", fontsize=8)
    by_count.set_title("best score against evaluations")
    by_time.set_title("best score against wall time")
    return _png(fig)


def _whole_numbers(ax) -> None:
    """Ticks of counts (evaluations, trial numbers) only at whole numbers."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _time_unit(longest_s: float) -> tuple[str, float]:
    """The unit that keeps a wall-time axis readable: seconds, minutes or hours."""
    if longest_s >= 3 * 3600:
        return "hours", 3600.0
    if longest_s >= 3 * 60:
        return "minutes", 60.0
    return "seconds", 1.0


def _floor(values: list[float | None]) -> float:
    """Where failed candidates sit on a plot: at the lowest score seen."""
    ok = [v for v in values if v is not None]
    return min(ok) if ok else 0.0


def objectives_plot(data: CampaignData) -> bytes:
    """Every finished candidate's value of each objective, by trial number; the best
    (or, for several objectives, the Pareto front) marked."""
    names, directions = data.objectives.names, data.objectives.directions
    fig, axes = _figure(11, 2.6 * len(names), len(names), 1)
    marked = {t.number for t in (data.best_order if data.multi_objective
                                 else data.best_order[:1])}
    label = "Pareto front" if data.multi_objective else "best"
    for ax, name, direction in zip(axes, names, directions):
        points = [(t.number, t.fitness.objectives[name]) for t in data.scored]
        if points:
            ax.scatter(*zip(*points), s=14, color=OK_COLOR, label="complete")
        reused = [(t.number, t.fitness.objectives[name]) for t in data.trials
                  if t.reused_from and t.fitness is not None and t.fitness.is_ok]
        if reused:
            ax.scatter(*zip(*reused), s=30, facecolors="none", edgecolors="gray",
                       label="reused result")
        failed = [t.number for t in data.failures]
        if failed:
            ax.scatter(failed, [_floor([v for _, v in points])] * len(failed), marker="x",
                       color=FAILED_COLOR, label="failed")
        chosen = [(n, v) for n, v in points if n in marked]
        if chosen:
            ax.scatter(*zip(*chosen), s=80, marker="*", color=BEST_COLOR, label=label,
                       zorder=3)
        ax.set_ylabel(f"{name}\n({direction})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("trial number")
    axes[0].set_title("every candidate's objectives")
    for ax in axes:
        _whole_numbers(ax)
    return _png(fig)


def pareto_plot(data: CampaignData) -> bytes:
    """The first two objectives of every candidate, the non-dominated ones joined."""
    (a, b), (da, db) = data.objectives.names[:2], data.objectives.directions[:2]
    fig, (ax,) = _figure(6.5, 5)
    points = [(t.fitness.objectives[a], t.fitness.objectives[b]) for t in data.scored]
    if points:
        ax.scatter(*zip(*points), s=16, color=OK_COLOR, alpha=0.6, label="candidate")
    front = sorted((t.fitness.objectives[a], t.fitness.objectives[b]) for t in data.best_order)
    if front:
        ax.plot(*zip(*front), marker="o", color=FRONT_COLOR, label="Pareto front")
    ax.set_xlabel(f"{a} ({da})")
    ax.set_ylabel(f"{b} ({db})")
    ax.set_title("Pareto front" + (f" (of {len(data.objectives.names)} objectives, "
                                   "first two shown)" if len(data.objectives.names) > 2
                                   else ""))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def coefficients_plot(grid: LayerGrid) -> bytes:
    """One heat map per parameter: rows (source, tensor group), columns layers."""
    params = sorted(grid.values)
    heights = [max(1.6, 0.38 * len(grid.values[p]) + 1.0) for p in params]
    fig, axes = _figure(min(11, 4 + 0.5 * grid.layers), sum(heights), len(params), 1)
    for ax, param in zip(axes, params):
        rows = grid.values[param]
        labels = [f"{source} · {group}" for source, group in rows]
        matrix = [[math.nan if v is None else v for v in values] for values in rows.values()]
        image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xticks(range(grid.layers))
        ax.set_xlabel("layer")
        ax.set_title(param)
        if grid.layers * len(labels) <= 200:
            for i, values in enumerate(matrix):
                for j, v in enumerate(values):
                    if not math.isnan(v):
                        # dark text on the bright end of viridis, light on the dark end
                        light = image.norm(v) < 0.6
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if light else "black")
        fig.colorbar(image, ax=ax)
    return _png(fig)


def routing_plot(routing: Routing) -> bytes:
    """A routed recipe's path: which model's layer each hop runs (a row per model and
    layer), joined in path order, each hop coloured by the scale on its input."""
    labels = model_labels(routing.models())
    rows = sorted({(h.model, h.layer) for h in routing.path},
                  key=lambda r: (routing.models().index(r[0]), r[1]))
    index = {r: i for i, r in enumerate(rows)}
    xs = list(range(len(routing.path)))
    ys = [index[(h.model, h.layer)] for h in routing.path]
    fig, (ax,) = _figure(min(11, 7 + 0.15 * len(xs)), 1.8 + 0.3 * len(rows))
    ax.plot(xs, ys, color="#c7c7c7", zorder=1)
    points = ax.scatter(xs, ys, c=[h.scale for h in routing.path], cmap="viridis", s=40,
                        zorder=2)
    ax.set_yticks(range(len(rows)), [f"{labels[m]} · layer {layer}" for m, layer in rows],
                  fontsize=8)
    ax.set_xlabel("hop (position on the path)")
    ax.set_title(f"layer path: {len(xs)} hops, embeddings and head from "
                 f"{labels[routing.embeddings]}", fontsize=10)
    _whole_numbers(ax)
    fig.colorbar(points, ax=ax, label="scale")
    return _png(fig)


def worker_time_plot(times: dict[str, dict[str, float]]) -> bytes:
    """Per worker, seconds spent loading the sources, merging, evaluating and idle, stacked
    (``times[worker][part]`` as :func:`~evomerge.campaign.status.worker_time` gives them)."""
    workers = sorted(times)
    fig, (ax,) = _figure(9, 1.4 + 0.5 * len(workers))
    left = [0.0] * len(workers)
    for part, label, color in (("load_s", "load", "#8c564b"), ("merge_s", "merge", "#9467bd"),
                               ("eval_s", "evaluation", OK_COLOR),
                               ("idle_s", "idle", "#c7c7c7")):
        widths = [times[w].get(part, 0.0) for w in workers]
        ax.barh(workers, widths, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("seconds")
    ax.set_title("time per worker: load, merge, evaluation, idle")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _png(fig)
