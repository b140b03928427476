"""Exports: native recipe YAML, mergekit YAML (both directions), model cards."""
