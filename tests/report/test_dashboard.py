"""``evomerge dashboard``: optuna-dashboard serves the campaign's trials with the gene
names as parameters, the objectives named and the per-task metrics as attributes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from evomerge.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, deadline: float, server: subprocess.Popen):
    """GET ``url`` as JSON, retrying while the server starts."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return json.load(answer)
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_the_dashboard_serves_the_campaign(finished):
    pytest.importorskip("optuna_dashboard")
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen([sys.executable, "-m", "evomerge.cli", "dashboard",
                               str(finished.out), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        studies = _get(base, time.monotonic() + 60, server)["study_summaries"]
        (study,) = [s for s in studies if s["study_name"] == "report-test"]
        detail = _get(f"{base}/{study['study_id']}", time.monotonic() + 10, server)
    finally:
        server.terminate()
        server.wait(timeout=10)
    trials = finished.open_record().trials()
    assert len(detail["trials"]) == len(trials)
    genes = [g.name for g in finished.campaign.space.genes]
    complete = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert complete and all([p["name"] for p in t["params"]] == genes for t in complete)
    assert detail["objective_names"] == ["score"]
    first = {a["key"]: a["value"] for a in complete[0]["user_attrs"]}
    assert "zoo_foreign_add_mc_search/acc" in json.loads(first["metrics"])
    assert {"uid", "merge_s", "eval_s", "worker"} <= set(first)


def test_without_optuna_dashboard_installed_it_says_how_to_install(finished, monkeypatch,
                                                                   capsys):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # as if not installed
    assert main(["dashboard", str(finished.out), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install -e ".[dashboard]"' in err


def test_a_port_outside_the_range_exits_2(finished, capsys):
    assert main(["dashboard", str(finished.out), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_a_campaign_without_a_study_yet_exits_2(models, task_dir, tmp_path, capsys):
    pytest.importorskip("optuna_dashboard")
    from report_support import write_campaign

    from evomerge.campaign.config import load_campaign
    from evomerge.campaign.folder import new_folder

    folder = new_folder(tmp_path / "out", load_campaign(
        write_campaign(tmp_path / "c.yaml", models, task_dir)), None)
    assert main(["dashboard", str(folder.out), "--port", str(_free_port())]) == 2
    assert "has no study yet" in capsys.readouterr().err
