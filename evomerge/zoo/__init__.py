"""The toy model zoo: tiny Llama-architecture models and synthetic tasks, built locally."""
