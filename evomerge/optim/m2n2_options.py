"""M2N2 options: defaults from the paper, validation with messages that name the rule.

=============  ==========  ==========================================================
option         default     meaning
=============  ==========  ==========================================================
population     20          archive size P
alpha          1.0         resource-sharing exponent; 0 is a plain GA
attraction     True        parent B ∝ attraction to A (False: B ∝ fitness, ablation)
split_point    True        split-point SLERP (False: one t = w everywhere, ablation)
initial        None        starting members: vectors (vector form) or (G, K+1)
                           coefficient matrices; None: random vectors / one-hot
                           coefficients (each basis tensor alone, i.e. each source)
random_init    2           from scratch: how many N(0, init_std^2) starting vectors
init_std       0.01        from scratch: their standard deviation
noise_std      auto        N(0, noise_std^2) added to every child: 0.01 from scratch,
                           0 from given members (the paper mutates only from scratch)
groups         None        coefficient form: parameter group names, canonical order
group_sizes    None        coefficient form: number of parameters per group
gram           None        coefficient form: (G, K+1, K+1) basis Gram matrices
=============  ==========  ==========================================================

Giving ``groups`` selects the coefficient form; then ``dim`` must be G * (K+1).

>>> M2N2Options.parse(10, {"population": 1}).population
Traceback (most recent call last):
...
evomerge.errors.ConfigError: field 'optimizer.options.population' = 1: must be an integer >= 2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evomerge.optim.options import check_known, flag, number, option_error, whole_number


@dataclass
class M2N2Options:
    """Validated options; ``initial`` and ``gram`` stay arrays (never in to_json)."""

    population: int = 20
    alpha: float = 1.0
    attraction: bool = True
    split_point: bool = True
    random_init: int = 2
    init_std: float = 0.01
    noise_std: float = 0.01
    groups: list[str] | None = None
    group_sizes: list[int] | None = None
    initial: list[np.ndarray] | None = None
    gram: np.ndarray | None = None

    @property
    def coefficient_form(self) -> bool:
        return self.groups is not None

    @classmethod
    def parse(cls, dim: int, options: dict[str, Any]) -> M2N2Options:
        check_known(options, cls.__dataclass_fields__, "optimizer 'm2n2'")
        opts = cls(
            population=whole_number("population", options.get("population", 20), 2),
            alpha=number("alpha", options.get("alpha", 1.0), 0.0),
            attraction=flag("attraction", options.get("attraction", True)),
            split_point=flag("split_point", options.get("split_point", True)),
            random_init=whole_number("random_init", options.get("random_init", 2), 1),
            init_std=number("init_std", options.get("init_std", 0.01), 0.0, strict=True),
        )
        if options.get("groups") is not None:
            opts._parse_groups(dim, options)
        from_scratch = options.get("initial") is None and not opts.coefficient_form
        default_noise = 0.01 if from_scratch else 0.0
        given_noise = options.get("noise_std")
        opts.noise_std = (default_noise if given_noise is None
                          else number("noise_std", given_noise, 0.0))
        if opts.coefficient_form and opts.noise_std > 0:
            raise option_error("noise_std", opts.noise_std,
                               "must be 0 for coefficient recipes (noise is for the vector form)")
        if options.get("initial") is not None:
            opts.initial = opts._parse_initial(dim, options["initial"])
        return opts

    def _parse_groups(self, dim: int, options: dict[str, Any]) -> None:
        groups, sizes = options["groups"], options.get("group_sizes")
        if not isinstance(groups, (list, tuple)) or not groups or \
                not all(isinstance(g, str) for g in groups):
            raise option_error("groups", groups, "must be a non-empty list of group names")
        if sizes is None or len(sizes) != len(groups) or \
                not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
            raise option_error("group_sizes", sizes,
                               f"must list one positive integer per group ({len(groups)} groups)")
        if dim % len(groups):
            raise option_error("groups", f"<{len(groups)} groups>",
                               f"dim = {dim} must be groups x basis tensors, a multiple of "
                               f"{len(groups)}")
        self.groups, self.group_sizes = list(groups), [int(s) for s in sizes]
        if options.get("gram") is not None:
            self.gram = self.check_gram(options["gram"], dim)

    def check_gram(self, gram: Any, dim: int) -> np.ndarray:
        """The Gram matrices as a float64 array, after checking shape and symmetry."""
        n_groups = len(self.groups or [])
        shape = (n_groups, dim // max(n_groups, 1), dim // max(n_groups, 1))
        array = np.asarray(gram, dtype=np.float64)
        if array.shape != shape or not np.all(np.isfinite(array)):
            raise option_error("gram", f"<array of shape {array.shape}>",
                               f"must be finite with shape (groups, basis, basis) = {shape}")
        if not np.allclose(array, array.transpose(0, 2, 1), rtol=1e-6, atol=0):
            raise option_error("gram", "<array>", "each group's Gram matrix must be symmetric")
        return array

    def _parse_initial(self, dim: int, initial: Any) -> list[np.ndarray]:
        if self.coefficient_form:
            shape, dtype = (len(self.groups), dim // len(self.groups)), np.float64
        else:
            shape, dtype = (dim,), np.float32
        try:
            members = [np.array(m, dtype=dtype) for m in initial]
        except (TypeError, ValueError):
            raise option_error("initial", initial, "must be a list of numeric arrays") from None
        for i, m in enumerate(members):
            if m.shape != shape or not np.all(np.isfinite(m)):
                raise option_error(f"initial[{i}]", f"<array of shape {m.shape}>",
                                   f"every starting member must be finite with shape {shape}")
        if not members:
            raise option_error("initial", initial, "must hold at least one starting member")
        return members

    def to_json(self) -> dict[str, Any]:
        """Resolved options without the arrays (the state stores members and Gram)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__
                if name not in ("initial", "gram")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> M2N2Options:
        return cls(**data)
