"""The ``evomerge`` command."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import click

from evomerge.errors import ConfigError, EvomergeError
from evomerge.merge.dtypes import COMPUTE_MODES, DTYPE_NAMES

SIZE_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20,
              "G": 2**30, "GB": 2**30, "T": 2**40, "TB": 2**40}


def parse_size(text: str, option: str = "--out-shard-size") -> int:
    """'5GB' -> 5 * 2**30; plain numbers are bytes.

    >>> parse_size("1.5M")
    1572864
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?B?)\s*", text.upper())
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(None, option, text, "must be a positive size like 500MB or 5GB")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2)])


class LazyGroup(click.Group):
    """Subcommand groups whose imports are heavy load only when they are called.

    ``--help`` lists them with the short help given here, so it imports nothing heavy.
    """

    lazy = {"zoo": ("evomerge.zoo.cli:zoo",
                    "The toy model zoo: tiny Llama models and local tasks built here."),
            "space": ("evomerge.space.cli:space",
                      "Search spaces: show their genes, decode points into recipes."),
            "run": ("evomerge.campaign.cli:run",
                    "Search the merges of a campaign file; every candidate is a trial."),
            "resume": ("evomerge.campaign.cli:resume",
                       "Continue an interrupted or finished campaign folder."),
            "status": ("evomerge.campaign.cli:status",
                       "Evaluations, failures and the best candidate of a campaign."),
            "export": ("evomerge.export.cli:export",
                       "A campaign's best recipe as a file, or built with a model card."),
            "report": ("evomerge.report.cli:report",
                       "A campaign's self-contained HTML report: plots, failures, recipe."),
            "dashboard": ("evomerge.report.cli:dashboard",
                          "Serve a campaign's study in optuna-dashboard on 127.0.0.1."),
            "demo": ("evomerge.zoo.demo:demo_cmd",
                     "A whole campaign on the toy zoo with Ray workers, in minutes.")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name][0].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))  # as click lays it out
        rows = []
        for name in names:
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            else:
                rows.append((name, super().get_command(ctx, name).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="evomerge")
def cli() -> None:
    """Evolutionary search over language-model merges."""


@cli.command()
@click.argument("recipe_file", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N")
@click.option("--dtype", type=click.Choice(DTYPE_NAMES),
              default=None, help="output dtype (default: the recipe's, else the sources')")
@click.option("--out-shard-size", default="5GB", show_default=True,
              help="largest output shard")
@click.option("--compute", type=click.Choice(COMPUTE_MODES), default="dtype",
              show_default=True,
              help="dtype: compute in the recipe's dtype (else the sources'), as mergekit "
                   "does; float32: compute in float32 and cast only the result")
@click.option("--overwrite", is_flag=True, help="replace a model already at OUT_DIR")
@click.option("--allow-pickle", is_flag=True,
              help="also read pickle .bin checkpoints (can run arbitrary code)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def merge(recipe_file: Path, out_dir: Path, device: str, dtype: str | None,
          out_shard_size: str, compute: str, overwrite: bool, allow_pickle: bool,
          quiet: bool) -> None:
    """Build the merged model of RECIPE_FILE (native or mergekit YAML) into OUT_DIR."""
    from evomerge.export.mergekit_yaml import load_any_recipe
    from evomerge.export.model_card import merge_records
    from evomerge.merge.to_disk import merge_to_disk
    from evomerge.merge.validate import ignored_settings

    shard = parse_size(out_shard_size)
    recipe = load_any_recipe(recipe_file)
    if recipe.routing is not None:  # a layer path: built in memory, then exported
        from evomerge.export.routed import export_recipe
        from evomerge.merge.dtypes import torch_dtype

        _check_device(device)
        out = export_recipe(recipe, out_dir, device=device,
                            dtype=torch_dtype(dtype or recipe.dtype or "float32"),
                            overwrite=overwrite, max_shard_bytes=shard)
        click.echo(f"wrote the routed model ({len(recipe.routing.path)} hops) to {out}")
        return
    ignored = ignored_settings(recipe)
    if ignored:  # accepted as mergekit accepts them, said once
        click.echo(f"warning: {recipe_file}: merge method {recipe.merge_method!r} ignores "
                   f"{', '.join(ignored)}", err=True)
    _check_device(device)
    with _progress_bar("merging", quiet) as progress:
        report = merge_to_disk(
            recipe, out_dir, device=device, dtype=dtype, max_shard_bytes=shard,
            overwrite=overwrite, allow_pickle=allow_pickle, recipe_file=recipe_file,
            progress=progress, records=merge_records(recipe), compute=compute)
    click.echo(f"wrote {report.tensors} tensors ({report.bytes_written / 2**20:.1f} MiB) "
               f"to {report.out_dir} in {report.seconds:.2f} s")


@cli.command("convert-recipe")
@click.argument("recipe_file", type=click.Path(path_type=Path))
@click.option("--to", "target", type=click.Choice(["native", "mergekit"]), required=True)
def convert_recipe(recipe_file: Path, target: str) -> None:
    """Print RECIPE_FILE as a native recipe or as a mergekit config."""
    from evomerge.export.mergekit_yaml import load_any_recipe, mergekit_yaml

    recipe = load_any_recipe(recipe_file)
    click.echo(recipe.to_yaml() if target == "native" else mergekit_yaml(recipe), nl=False)


@contextlib.contextmanager
def _progress_bar(label: str, quiet: bool):
    """A ``progress(done, total)`` callback drawing a bar, or None when ``quiet``: rich
    is then never imported, which a short merge notices in its start-up time."""
    if quiet:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        job = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(job, completed=done, total=total)


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(None, "--device", device, "CUDA is not available on this machine")
    elif device != "cpu":
        raise ConfigError(None, "--device", device, "must be cpu, cuda or cuda:N")


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one message and exit with status 2, and so does
    anything unexpected (``EVOMERGE_TRACEBACK=1`` shows its traceback instead)."""
    try:
        cli.main(args=argv, prog_name="evomerge", standalone_mode=False)
    except EvomergeError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:  # no input may end in a traceback: one line, status 2
        if os.environ.get("EVOMERGE_TRACEBACK"):
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (unexpected; set "
                   "EVOMERGE_TRACEBACK=1 for the traceback)", err=True)
        return 2
    return 0


def run() -> None:
    """The console script: :func:`main`, its status as the exit status."""
    sys.exit(main())


if __name__ == "__main__":
    run()
