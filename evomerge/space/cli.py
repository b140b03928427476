"""``evomerge space``: show a space's genes, decode a point into a recipe.

Models are given in role order: the base first when the space has one, then the sources.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from evomerge.errors import ConfigError

_MODELS_HELP = ("a model folder; repeat in role order: the base first (when the space has "
                "one), then the sources")


@click.group()
def space() -> None:
    """Search spaces: show their genes, decode points into recipes."""


@space.command()
@click.argument("space_file", type=click.Path(path_type=Path))
@click.option("--models", "models", multiple=True, type=click.Path(path_type=Path),
              help=_MODELS_HELP)
def show(space_file: Path, models: tuple[Path, ...]) -> None:
    """Print SPACE_FILE's genes: with --models each gene by name, else as a formula of
    the number of sources (n) and layers (L)."""
    from evomerge.space import load_space
    from evomerge.space.dataflow import DataflowSpace, describe_dataflow
    from evomerge.space.show import describe, describe_bound

    loaded = load_space(space_file)
    dataflow = isinstance(loaded, DataflowSpace)
    if not models:
        click.echo(describe_dataflow(loaded) if dataflow else describe(loaded))
        return
    bound = _bind(loaded, models)
    click.echo(bound.describe() if dataflow else describe_bound(bound))


@space.command()
@click.argument("space_file", type=click.Path(path_type=Path))
@click.option("--x", "point", required=True,
              help="the point, one number per gene, separated by commas or spaces")
@click.option("--models", "models", multiple=True, type=click.Path(path_type=Path),
              help=_MODELS_HELP)
def decode(space_file: Path, point: str, models: tuple[Path, ...]) -> None:
    """Print the recipe at point --x of SPACE_FILE as native recipe YAML.

    Without --models the recipe names the models by role (source_1, ... as many as the
    point has genes for), for spaces whose genes need no layers or tensor names."""
    from evomerge.space import Space, load_space

    loaded = load_space(space_file)
    x = parse_point(point)
    if models:
        bound = _bind(loaded, models)
    else:

        if not isinstance(loaded, Space) or any("layer" in e.per or "group" in e.per
                                                for e in loaded.genes):
            raise ConfigError(None, "--models", None, "this space's genes depend on the "
                              "models' layers and tensor names; give --models")
        bound = _bind_roles(loaded, len(x))
    recipe, clipped = bound.decode(x)
    for clip in clipped:
        click.echo(f"clipped x[{clip.index}] ({clip.gene}) from {clip.given:g} to "
                   f"{clip.used:g}", err=True)
    click.echo(recipe.to_yaml(), nl=False)


def parse_point(text: str) -> list[float]:
    """'0.1, 0.5 0.9' -> [0.1, 0.5, 0.9]; anything but numbers is refused.

    >>> parse_point("0.1, 0.5 1e-3")
    [0.1, 0.5, 0.001]
    """
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ConfigError(None, "--x", text, "must be numbers separated by commas or "
                          "spaces, one per gene") from None


def _bind(loaded, models: tuple[Path, ...]):
    names = [str(m) for m in models]
    if loaded.models.base is not None:
        return loaded.bind(names[0], names[1:])
    return loaded.bind(None, names)


def _bind_roles(loaded, n_genes: int):
    """The space bound to its role names, with as many sources as ``n_genes`` needs."""
    from evomerge.space.facts import ModelFacts

    roles = loaded.models
    low, high = roles.count_range()
    bound = None
    for n in range(low, (high or max(low, n_genes)) + 1):
        bound = loaded.bind(roles.base, roles.source_names(n), facts=ModelFacts(()))
        if bound.dim >= n_genes:
            break
    return bound
