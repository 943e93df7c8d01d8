"""`make airflow` stops at once (issue 28): on SIGINT (Ctrl-C) or SIGTERM the command exits, and every process of
its tree is gone, within 10 s of the signal.

It used to take about a minute (airflow standalone stopped its components and waited for each, the scheduler's
LocalExecutor workers ignore SIGINT and SIGTERM, and the launcher's waits were 45, 15, 5 and 10 s one after
another), and a task runner (a process group of its own) could outlive it. The real command runs here: Ctrl-C with
everything up and an ingest's task running, and SIGTERM while Airflow is still starting (its components and the
scheduler's workers there, the UI perhaps not yet: processes are still being born). Every process seen before the
signal, and while the command stops, must be gone. The old stop fails both (it did not exit within 10 s).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest

from tests.support.airflow import MakeAirflow, get, post
from tests.support.poll import wait_until
from tests.support.servers import free_port

LIMIT = 10  # seconds, from the signal
COMPONENTS = ("airflow standalone", "scheduler", "triggerer", "dag-processor", "api-server")


def alive(procs) -> list:
    """Those still running (a zombie has exited: only its parent's bookkeeping is left)."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.NoSuchProcess:
            pass
    return left


def command_lines(procs) -> str:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            out.append(f"{proc.pid} (gone)")
    return "\n".join(out)


def in_tree(stack: MakeAirflow, *parts: str) -> bool:
    """Each of ``parts`` is in a command line of the stack's tree."""
    names = command_lines(stack.processes()).replace("api_server", "api-server")  # its process title
    return all(part in names for part in parts)


def up(stack: MakeAirflow) -> bool:
    """Every component runs (the LocalExecutor's workers and the emulator too), and the scheduler, the triggerer
    and the DAG processor heartbeat."""
    health = get(f"{stack.url}/api/v2/monitor/health")[1]
    return in_tree(stack, "local-aws", "LocalExecutor", *COMPONENTS) and all(
        (health.get(part) or {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))


def task_runners(stack: MakeAirflow) -> list:
    """Processes of the tree leading a process group of their own, besides airflow standalone: Airflow's task
    runners (a signal to standalone's group misses them)."""
    found = []
    for proc in stack.processes():
        try:
            if os.getpgid(proc.pid) == proc.pid != stack.standalone_pid:
                found.append(proc)
        except OSError:
            pass
    return found


def stop_and_check(stack: MakeAirflow, sig: int, seen: set) -> None:
    """Send ``sig``; the command exits with 0, and every process of its tree (before the signal, and any seen
    while it stops: all added to ``seen``) is gone, within ``LIMIT`` s."""
    seen.update(stack.processes())
    stopping = threading.Event()

    def watch():  # the processes born during the stop count too
        while not stopping.is_set():
            try:
                seen.update(stack.processes())
            except psutil.Error:  # the command is gone
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.monotonic()
    try:
        code = stack.stop(timeout=LIMIT, sig=sig)
    finally:
        stopping.set()
        watcher.join()
    exited = time.monotonic() - start
    while alive(seen) and time.monotonic() - start < LIMIT:
        time.sleep(0.1)
    left, name = alive(seen), signal.Signals(sig).name
    print(f"{name}: exited ({code}) after {exited:.1f} s; {len(seen)} processes, gone after "
          f"{time.monotonic() - start:.1f} s")
    assert not left, f"still running {LIMIT} s after {name}:\n{command_lines(left)}"
    assert code == 0 and stack.lines[-1] == "stopped", stack.output()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One Airflow home for both: the second start finds its metadata DB migrated."""
    return tmp_path_factory.mktemp("make-airflow-stop") / "home"


@pytest.fixture
def seen():
    """The processes of the stack's tree the test saw."""
    return set()


@pytest.fixture
def stack(home, seen):
    stack = MakeAirflow(home, free_port())
    try:
        yield stack
    finally:
        if stack.proc is not None:
            try:
                seen.update(stack.processes())
            except psutil.Error:
                pass
        stack.stop(timeout=30, fast=True)
        for proc in alive(seen):  # a failed test leaves nothing running on the machine
            proc.kill()


def test_ctrl_c_with_everything_up_and_a_task_running_stops_every_process_within_10_s(stack, seen):
    stack.start()
    wait_until(lambda: up(stack), "every component of the stack", timeout=180, every=1)
    token = post(f"{stack.url}/auth/token", {"username": stack.user, "password": stack.password})[1]["access_token"]
    runs = f"{stack.url}/api/v2/dags/dynamodb_ingest/dagRuns"
    wait_until(lambda: post(runs, {"logical_date": None, "conf": {"table_name": "Orders", "chunk_target_mb": 0.005}},
                            token)[0] == 200, "the ingest to be triggered (its DAG parsed)", timeout=120, every=1)
    wait_until(lambda: task_runners(stack), "a task runner", timeout=120, every=0.1)
    stop_and_check(stack, signal.SIGINT, seen)


def test_sigterm_while_airflow_starts_stops_every_process_within_10_s(stack, seen):
    stack.start(until="airflow standalone pid")
    # the scheduler's LocalExecutor workers (they ignore SIGINT and SIGTERM) are there; the UI may not answer yet
    wait_until(lambda: in_tree(stack, "LocalExecutor", *COMPONENTS), "the scheduler's workers", timeout=180, every=0.1)
    stop_and_check(stack, signal.SIGTERM, seen)
