"""What a campaign shows: the HTML report (tables and matplotlib plots) and the live
optuna dashboard over its study."""
