"""Campaigns: the campaign file, the loop, the optuna-study record, resume and status.

``evomerge run CAMPAIGN.yaml --out DIR`` checks the campaign file
(:mod:`~evomerge.campaign.config`), prepares the folder
(:mod:`~evomerge.campaign.folder`) and runs the loop (:mod:`~evomerge.campaign.loop`),
which records every candidate as a trial of an optuna study
(:mod:`~evomerge.campaign.study`).
"""
