"""Search spaces: genes in the box [0, 1]^d, decoded into merge recipes.

A space file (``search_spaces/*.yaml``) names a merge method and which of its parameters
are genes, per model, per block of layers, per tensor group; :func:`load_space` reads
it, :meth:`Space.bind` fixes it to models, and the bound space decodes points into
recipes and encodes recipes back into points.
"""

from evomerge.space.bound import BoundSpace, Clip, Decoded
from evomerge.space.dataflow import DataflowSpace
from evomerge.space.facts import ModelFacts
from evomerge.space.files import load_space
from evomerge.space.layout import Gene
from evomerge.space.model import Space

__all__ = ["BoundSpace", "Clip", "DataflowSpace", "Decoded", "Gene", "ModelFacts", "Space",
           "load_space"]
