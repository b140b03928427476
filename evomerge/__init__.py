"""evomerge: evolutionary search over model merges.

A search driver proposes merge recipes, workers build each candidate model in memory
and score it, and the scores go back to the driver.
"""

__version__ = "0.1.0"
