"""The toy model zoo: tiny Llama-architecture models and synthetic tasks, built locally."""

#: The ``evomerge zoo`` group's one-line help (light to import: ``evomerge --help`` lists
#: it without loading the zoo's commands).
CLI_HELP = "The toy model zoo: tiny Llama models and local tasks built here."
