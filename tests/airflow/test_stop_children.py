"""make airflow's stop (dynadex.airflow_local.stop_children) on a tree built to resist it, in a few seconds.

The shapes are Airflow's: a process that ignores SIGTERM (LocalExecutor workers), a child leading a session of its
own (a task runner leads its own process group), and a child whose parent exits first (re-parented: a component
outliving airflow standalone). The real stack is in tests/airflow/test_airflow_local_stop.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest

from tests.support.paths import REPO  # noqa: I001 - before the path it builds is used

INCLUDE = REPO / "include"

STUB = r"""
import os, signal, subprocess, sys, time

folder, name, mode = sys.argv[1:4]
if mode != "polite":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode in ("parent", "orphaner"):  # a stubborn child in a session of its own
    subprocess.Popen([sys.executable, __file__, folder, name + "-child", "stubborn"], start_new_session=True)
with open(os.path.join(folder, name + ".tmp"), "w") as f:
    f.write(str(os.getpid()))
os.rename(os.path.join(folder, name + ".tmp"), os.path.join(folder, name))  # ready: SIGTERM is ignored
if mode == "orphaner":  # its child outlives it
    sys.exit(0)
time.sleep(120)
"""

DRIVER = r"""
import json, os, subprocess, sys, time
from dynadex.airflow_local import adopt_orphans, stop_children

folder, stub = sys.argv[1:3]
adopted = adopt_orphans()
for mode in ("parent", "orphaner", "polite"):
    subprocess.Popen([sys.executable, stub, folder, mode, mode], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
want = {"parent", "parent-child", "orphaner", "orphaner-child", "polite"}
while not want <= set(os.listdir(folder)):
    time.sleep(0.05)
start = time.monotonic()
left = stop_children(grace=1.0, kill_wait=2.0)
print(json.dumps({"adopted": adopted, "seconds": time.monotonic() - start, "left": [p.pid for p in left]}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adopt_orphans needs Linux (a child subreaper)")
def test_every_descendant_is_gone_at_the_deadline_even_those_ignoring_sigterm_or_in_their_own_session(tmp_path):
    folder = tmp_path / "pids"
    folder.mkdir()
    stub = tmp_path / "stub.py"
    stub.write_text(STUB)
    out = subprocess.run([sys.executable, "-c", DRIVER, str(folder), str(stub)], capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": str(INCLUDE), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    pids = {path.name: int(path.read_text()) for path in folder.iterdir() if not path.name.endswith(".tmp")}
    survivors = []
    for name, pid in pids.items():
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                survivors.append(name)
                psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    assert result["adopted"] and result["left"] == [] and not survivors, (result, survivors)
    assert 1.0 <= result["seconds"] < 3.0, result  # SIGKILL at the 1 s deadline, not a wait per process
