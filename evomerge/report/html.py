"""The campaign report: one self-contained HTML page (plots inlined as PNG, no network).

Sections, each a ``<section id=...>``: ``summary``, ``best`` (the best recipe),
``progress``, ``objectives``, ``pareto`` (multi-objective campaigns), ``coefficients``,
``workers``, ``search-vs-test``, ``failures`` and ``campaign`` (the campaign file).

>>> # page = render_report(campaign_data(open_folder("runs/toy")))
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from collections.abc import Iterable

from evomerge.campaign.status import worker_time
from evomerge.errors import EvomergeError
from evomerge.export.scores import recorded_report
from evomerge.report import plots
from evomerge.report.coefficients import layer_coefficients
from evomerge.report.data import CampaignData

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; } .note { color: #666; } details pre { margin: 0.3em 0; }
"""


def embed_png(png: bytes, alt: str) -> str:
    """An ``<img>`` holding the PNG itself as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render_report(data: CampaignData) -> str:
    sections = [_summary(data), _best(data), _progress(data), _objectives(data),
                _pareto(data), _coefficients(data), _workers(data), _search_vs_test(data),
                _failures(data), _campaign(data)]
    title = html.escape(f"evomerge campaign {data.name}")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>", *sections, "</body></html>", ""])


def _section(ident: str, heading: str, *body: str) -> str:
    return "\n".join([f'<section id="{ident}">', f"<h2>{html.escape(heading)}</h2>", *body,
                      "</section>"])


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, float):
                cells.append(f'<td class="num">{cell:.4g}</td>')
            elif isinstance(cell, int):
                cells.append(f'<td class="num">{cell}</td>')
            else:
                cells.append(f"<td>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>\n" + "\n".join(body) + "</table>"


def _summary(data: CampaignData) -> str:
    config = data.folder.campaign.config
    budget = config.budget
    evaluations = len(data.evaluated)
    running = data.count("RUNNING")
    state = (f"{running} candidates running (or left running by a stopped run)" if running
             else "no candidate running")
    rows = [
        ("folder", str(data.folder.out.resolve())),
        ("record", data.folder.url),
        ("optimizer", f"{config.optimizer.name} {json.dumps(config.optimizer.options)}"),
        ("objectives", ", ".join(f"{n} ({d})" for n, d in
                                 zip(data.objectives.names, data.objectives.directions))),
        ("genes", f"{data.folder.campaign.space.dim}"),
        ("evaluations", f"{evaluations}" + (f" of {budget.evaluations}"
                                            if budget.evaluations else "")
         + (f", budget {budget.hours} h" if budget.hours else "")),
        ("trials", (f"{len(data.trials)}: {data.count('COMPLETE')} complete, "
                    f"{data.count('FAIL')} failed, {data.count('PRUNED')} pruned, "
                    f"{sum(bool(t.reused_from) for t in data.trials)} reused; {state}")),
        ("time searching", f"{float(data.study_attrs.get('elapsed_s', 0.0)):.1f} s"),
        ("config hash", str(data.study_attrs.get("config_hash", "-"))),
        ("seed", str(config.seed)),
        ("versions", ", ".join(f"{k} {v}" for k, v in
                               data.study_attrs.get("versions", {}).items())),
        ("report written", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    return _section("summary", "Summary", _table(["", ""], rows))


def _best(data: CampaignData) -> str:
    best = data.best
    if best is None:
        return _section("best", "Best recipe", _note("No candidate has finished with scores."))
    recipe = data.folder.trial_recipe(best)
    values = ", ".join(f"{k} = {v:.4g}" for k, v in best.fitness.objectives.items())
    return _section(
        "best", "Best recipe",
        f"<p>Trial {best.number}, uid <code>{html.escape(best.candidate.uid)}</code>, "
        f"recipe <code>{html.escape(str(best.recipe_hash))}</code>: {html.escape(values)}. "
        f"<code>evomerge export {html.escape(str(data.folder.out))}</code> writes it.</p>",
        f"<pre>{html.escape(recipe.to_yaml())}</pre>")


def _progress(data: CampaignData) -> str:
    if not data.evaluated:
        return _section("progress", "Progress", _note("No evaluation has finished yet."))
    return _section("progress", "Progress", embed_png(plots.progress_plot(data),
                                                      "best score against evaluations"))


def _objectives(data: CampaignData) -> str:
    if not data.evaluated:
        return _section("objectives", "Objectives", _note("No evaluation has finished yet."))
    return _section("objectives", "Objectives",
                    embed_png(plots.objectives_plot(data), "every candidate's objectives"))


def _pareto(data: CampaignData) -> str:
    if not data.multi_objective:
        return _section("pareto", "Pareto front",
                        _note("One objective: the best candidate is the whole front."))
    if not data.scored:
        return _section("pareto", "Pareto front", _note("No candidate has scores yet."))
    names = data.objectives.names
    rows = [(t.number, t.candidate.uid, *[t.fitness.objectives[n] for n in names])
            for t in data.best_order]
    return _section("pareto", "Pareto front", embed_png(plots.pareto_plot(data), "Pareto front"),
                    _table(["trial", "uid", *names], rows))


def _coefficients(data: CampaignData) -> str:
    heading = "Best recipe per layer"
    if data.best is None:
        return _section("coefficients", heading, _note("No candidate has scores yet."))
    recipe = data.folder.trial_recipe(data.best)
    parts = []
    if recipe.merge_method is not None:
        parts += _parameter_maps(recipe)
    if recipe.routing is not None:
        parts.append(embed_png(plots.routing_plot(recipe.routing), "layer path"))
    return _section("coefficients", heading, *parts)


def _parameter_maps(recipe) -> list[str]:
    """The weight merge's parameters per layer, source and tensor group."""
    try:
        grid = layer_coefficients(recipe)
    except (EvomergeError, OSError) as exc:  # models moved or deleted since the run
        return [_note(f"The models could not be read to lay the recipe out: {exc}")]
    constant = grid.constant()
    for name in constant:
        del grid.values[name]
    notes = [_note(f"{name} = {value:g} everywhere.") for name, value in constant.items()]
    if not grid.values:
        return notes
    return [_note("Each parameter of the best recipe per layer, per source and tensor group "
                  "(the mean over the group's tensors), as the merge engine resolves it."),
            embed_png(plots.coefficients_plot(grid), "best recipe per layer"), *notes]


def _workers(data: CampaignData) -> str:
    times = worker_time(data.evaluated)
    if not times:
        return _section("workers", "Workers", _note("No evaluation has finished yet."))
    parts = ["candidates", "load_s", "merge_s", "eval_s", "idle_s", "busy_fraction"]
    rows = [(w, *[t.get(p, "-") for p in parts]) for w, t in sorted(times.items())]
    return _section(
        "workers", "Workers",
        _note("Idle: the time from a worker being ready to its last result that it spent "
              "neither merging nor evaluating (waiting for the optimizer, the record, "
              "lm-eval's set-up)."),
        embed_png(plots.worker_time_plot(times), "time per worker"),
        _table(["worker", "candidates", "load s", "merge s", "evaluation s", "idle s",
                "busy fraction"], rows))


def _search_vs_test(data: CampaignData) -> str:
    chosen = data.chosen()
    if not chosen:
        return _section("search-vs-test", "Search against test", _note("No candidate yet."))
    search = sorted({k for t in chosen for k in t.fitness.objectives})
    test = sorted({k for t in chosen for k in (recorded_report(t) or {})})
    rows = []
    for t in chosen:
        rank = data.best_order.index(t) + 1 if t in data.best_order else "-"
        report = recorded_report(t)
        if report is not None:
            tested = [report.get(k, "-") for k in test]
        else:
            error = (t.report or {}).get("error")
            tested = [f"failed: {error}" if error else "not scored"]
            tested += [""] * (len(test) - 1)
        rows.append((rank, t.number, t.candidate.uid,
                     *[t.fitness.objectives.get(k, "-") for k in search], *tested))
    test_header = [f"test: {k}" for k in test] or ["test"]
    return _section(
        "search-vs-test", "Search against test",
        _note("The campaign's best candidates by the search tasks"
              + (" (its Pareto front)" if data.multi_objective else "")
              + ", with their scores on the report tasks where the campaign scored them; "
                "`evomerge export --materialize` scores a candidate that has none."),
        _table(["rank", "trial", "uid", *[f"search: {k}" for k in search], *test_header], rows))


def _failures(data: CampaignData) -> str:
    failed = data.failures
    if not failed:
        return _section("failures", "Failures", _note("No candidate failed."))
    items = []
    for t in failed:
        error = (t.fitness.error if t.fitness else None) or "no error recorded"
        last = error.strip().splitlines()[-1] if error.strip() else error
        items.append(f"<details><summary>trial {t.number}, uid "
                     f"<code>{html.escape(t.candidate.uid)}</code>, worker "
                     f"{html.escape(str(t.worker))}: {html.escape(last)}</summary>"
                     f"<pre>{html.escape(error)}</pre></details>")
    return _section("failures", f"Failures ({len(failed)})", *items)


def _campaign(data: CampaignData) -> str:
    return _section("campaign", "Campaign file",
                    _note("As it ran: absolute paths, the space inline."),
                    f"<pre>{html.escape(data.campaign_text)}</pre>")
