"""Can these models be merged tensor by tensor? Same tensor names, same shapes.

Every model is compared with the first. A model with tied embeddings counts as having
``lm_head.weight`` (its reader serves the embedding under that name), so a tied and an
untied model of the same shapes are compatible. Dtypes may differ: merges cast.

>>> import tempfile, pathlib
>>> from evomerge.checkpoint.reader import CheckpointReader
>>> from evomerge.testing.random_models import save_random_llama
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> a = CheckpointReader(save_random_llama(d / "a", seed=0))
>>> b = CheckpointReader(save_random_llama(d / "b", seed=1, intermediate_size=64))
>>> check_compatible([a, a])
>>> check_compatible([a, b])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
evomerge.errors.CheckpointError: models cannot be merged tensor by tensor: model 'b': tensor 'model.layers.0.mlp.down_proj.weight' has shape (32, 64) but model 'a' has (32, 80); ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from evomerge.checkpoint.reader import CheckpointReader
from evomerge.errors import CheckpointError

MAX_LISTED = 5  # mismatches quoted in the message; the rest are counted


def _labels(readers: Sequence[CheckpointReader]) -> list[str]:
    """Folder names, or full paths where two folders share a name."""
    names = [r.path.name for r in readers]
    return [n if names.count(n) == 1 else str(r.path) for n, r in zip(names, readers)]


def _effective_names(reader: CheckpointReader) -> set[str]:
    names = set(reader.tensor_names())
    if reader.tied_embeddings:
        names.add("lm_head.weight")
    return names


def _preview(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def check_compatible(readers: Sequence[CheckpointReader],
                     ignore: Callable[[str], bool] | None = None) -> None:
    """Raise :class:`CheckpointError` unless all models have the same tensor names and shapes.

    The message lists the first few differences, naming which model has what. Tensors
    for which ``ignore(name)`` holds may differ in shape (vocabulary matrices that a
    tokenizer merge aligns first).
    """
    if len(readers) < 2:
        return
    labels = _labels(readers)
    ref, ref_label = readers[0], labels[0]
    ref_names = _effective_names(ref)
    problems: list[str] = []
    for reader, label in zip(readers[1:], labels[1:]):
        names = _effective_names(reader)
        missing = sorted(ref_names - names)
        extra = sorted(names - ref_names)
        if missing:
            problems.append(f"model '{label}' lacks {len(missing)} tensor(s) present in "
                            f"'{ref_label}': {_preview(missing)}")
        if extra:
            problems.append(f"model '{label}' has {len(extra)} tensor(s) absent from "
                            f"'{ref_label}': {_preview(extra)}")
        mismatched = [
            (n, reader.shape(n), ref.shape(n))
            for n in sorted(ref_names & names)
            if reader.shape(n) != ref.shape(n) and not (ignore and ignore(n))
        ]
        problems.extend(
            f"model '{label}': tensor '{n}' has shape {shape} but model '{ref_label}' has "
            f"{ref_shape}"
            for n, shape, ref_shape in mismatched[:MAX_LISTED]
        )
        if len(mismatched) > MAX_LISTED:
            problems.append(f"model '{label}': {len(mismatched) - MAX_LISTED} more tensor(s) "
                            f"differ in shape")
    if problems:
        raise CheckpointError("models cannot be merged tensor by tensor: " + "; ".join(problems))
