"""Merging: operators, recipes, per-tensor plans, disk-to-disk and in-memory builds."""
