"""The Ray executor, on a local Ray this test starts: a campaign on two workers, a worker
killed in the middle of a candidate (replaced, the candidate run again, the campaign
finished), a Ray head started by the test and joined with ``--address``, and an address
where nothing answers (exit 2, quickly)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray
from campaign_support import write_campaign

from evomerge.campaign.folder import open_folder
from evomerge.campaign.loop import CampaignLoop
from evomerge.campaign.runner import open_executor, prepare_run
from evomerge.campaign.status import campaign_status
from evomerge.cli import main

SLOW = Path(__file__).with_name("slow_objective.py")


@pytest.fixture
def no_ray_left():
    """Each test leaves no Ray connection behind in this process."""
    yield
    if ray.is_initialized():
        ray.shutdown()


def _slow_campaign(tiny_zoo, tmp_path, evaluations=4):
    return write_campaign(
        tmp_path / "c.yaml", tiny_zoo, budget={"evaluations": evaluations},
        evaluation={"python": [{"name": "slow", "function": f"{SLOW}:score",
                                "objectives": {"mean": "maximize"}}]},
        executor={"kind": "ray", "workers": 2, "device": "cpu"})


def test_a_worker_killed_mid_candidate_is_replaced_and_the_campaign_finishes(
        tiny_zoo, tmp_path, no_ray_left):
    folder = prepare_run(_slow_campaign(tiny_zoo, tmp_path), tmp_path / "out")
    executor = open_executor(folder)
    pids = {slot: info["pid"] for slot, info in executor.worker_info().items()}
    assert len(set(pids.values())) == 2  # two worker processes
    killed = []

    def kill_once(status):  # called each second while candidates run
        if not killed and status.running == 2 and status.evaluations == 0:
            os.kill(pids[0], signal.SIGKILL)  # inside its first two-second objective
            killed.append(pids[0])

    status = CampaignLoop(folder, executor, kill_once).run()
    assert killed and executor.replaced == 1
    assert status.stopped == "budget" and status.evaluations == 4 and status.failures == 0
    summary = campaign_status(open_folder(folder.out))
    assert summary["complete"] == 4 and summary["failed"] == 0
    workers = {t["worker"] for t in summary["chosen"]} | set(summary["workers"])
    assert not any(w.endswith(f":{killed[0]}") for w in workers)  # its candidate reran
    assert len(summary["workers"]) == 2 and all(
        w["candidates"] >= 1 for w in summary["workers"].values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_joins_a_ray_head_given_with_address(tiny_zoo, tmp_path):
    # the head and the campaign share a token, as Ray's token authentication wants (Ray
    # reads it once per process: the campaign runs as a command of its own)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    port = _free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    # Ray's socket paths live in its temp dir and must stay short (a Unix socket limit)
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
         f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline
                time.sleep(0.5)
        # in two fidelity levels: each level's job and the scores before it cross to Ray
        path = write_campaign(tmp_path / "c.yaml", tiny_zoo, budget={"evaluations": 4},
                              evaluation__fidelity={"levels": [0.5, 1.0], "rule": "median"})
        out = tmp_path / "out"
        run = subprocess.run(
            [sys.executable, "-m", "evomerge.cli", "run", str(path), "--out", str(out),
             "--address", f"127.0.0.1:{port}", "--workers", "2", "--quiet"],
            capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "stopped (budget): 4 evaluations, 0 failed" in run.stdout
        summary = campaign_status(open_folder(out))
        assert summary["complete"] == 4 and len(summary["workers"]) == 2
        assert all(w.startswith("ray") for w in summary["workers"])
        trials = open_folder(out).open_record().trials()
        assert [t.level for t in trials] == [0] * 4  # level 0 recorded, then the last
        assert all(len(t.fitness.sample_scores["zoo_foreign_add_mc_search"]) == 4
                   for t in trials)
        assert head.poll() is None  # the campaign left the cluster; the head still runs
    finally:
        head.send_signal(signal.SIGTERM)
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def test_an_address_where_no_head_answers_exits_2_quickly(campaign_file, tmp_path, capsys):
    port = _free_port()  # nothing listens there
    start = time.monotonic()
    code = main(["run", str(campaign_file), "--out", str(tmp_path / "out"),
                 "--address", f"127.0.0.1:{port}", "--quiet"])
    assert code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "no Ray head answers there" in err
    assert "Traceback" not in err
