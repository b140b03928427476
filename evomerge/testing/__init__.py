"""Helpers for tests, doctests and benchmarks: a character-level tokenizer and random tiny
Llama checkpoints made locally.

A low layer: it imports torch, transformers and tokenizers only, so that any module of
evomerge (checkpoint I/O included) may use it in its doctests.
"""
