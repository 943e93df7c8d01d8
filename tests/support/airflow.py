"""Real Airflow for tests: a migrated metadata DB in a temp AIRFLOW_HOME, our DAG folder, the emulator as aws_default.

``resume`` continues a run after tasks were cleared with Airflow's own
``clear_task_instances`` (what "Clear" in the UI does), running what becomes
schedulable exactly like ``dag.test()`` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def airflow_env(home: Path) -> dict:
    """How the tests' Airflow is configured: our DAG and plugin folders, no examples, quiet logs."""
    return dict(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )


def prepare(home: Path) -> None:
    """Point Airflow at ``home`` and migrate its DB. Airflow reads its home once per process (at the first
    import, which under pytest-xdist may come from another test file's collection): once imported, that
    home is kept, so the in-process DB is the one migrated."""
    if "airflow.configuration" in sys.modules:
        from airflow.configuration import AIRFLOW_HOME

        home = Path(AIRFLOW_HOME)
    os.environ.update(
        **airflow_env(home),
        DYNADEX_EXPORT_POLL_SECONDS="1",
        DYNADEX_SYNC_RUN_SECONDS="5",
        DYNADEX_TASK_RETRIES="0",
    )
    if str(ROOT / "plugins") not in sys.path:
        sys.path.insert(0, str(ROOT / "plugins"))
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)


def use_emulator(endpoint: str) -> None:
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {"conn_type": "aws", "login": "local", "password": "local",
         "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    )


def dag(dag_id: str, only_its_file: bool = False):
    """The DAG ``dag_id`` as Airflow parses our DAG folder (``only_its_file``: just ``dags/<dag_id>.py``)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py" if only_its_file else ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def xcom(run, task_id, map_index=-1):
    """The return value a task instance of ``run`` pushed (None if none)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, map_indexes=map_index,
                                   key="return_value")
        rows = session.scalars(query).all()
        return XComModel.deserialize_value(rows[0]) if rows else None


def states(run) -> dict:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def clear(run, predicate) -> list:
    """Clear the run's task instances matching ``predicate(ti)`` (and leave the rest), as the UI does."""
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = [ti for ti in run.get_task_instances(session=session) if predicate(ti)]
        clear_task_instances(tis, session)
        session.commit()
        return [(ti.task_id, ti.map_index) for ti in tis]


def resume(sdk_dag, run):
    """Run a cleared dag run to its end, the way dag.test() runs one."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState, TaskInstanceState

    session = settings.Session()
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(sdk_dag))
    dr = session.query(DagRun).filter(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id).one()
    dr.dag = scheduler_dag
    dr.state = DagRunState.RUNNING
    session.commit()
    for _ in range(200):
        if dr.state != DagRunState.RUNNING:
            break
        session.expire_all()
        schedulable, _ = dr.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
            ti.scheduled_dttm = timezone.utcnow()
        session.commit()
        for ti in [t for t in dr.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED]:
            try:
                _run_task(ti=ti, task=sdk_dag.task_dict[ti.task_id], run_triggerer=True)
            except Exception:
                pass
    session.expire_all()
    return dr


def forget_runs(dag_id: str) -> None:
    """Remove ``dag_id``'s runs and task instances (earlier tests of this process ran it in the same DB)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id).delete(synchronize_session=False)
        session.query(DagRun).filter(DagRun.dag_id == dag_id).delete(synchronize_session=False)


def run_one(sdk_dag, run_id: str, task_id: str, map_index: int) -> str:
    """Run one task instance of a run of ``sdk_dag`` in this process, as ``dag.test()`` runs each; its state."""
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import TaskInstanceState

    session = settings.Session()
    ti = session.query(TaskInstance).filter(TaskInstance.dag_id == sdk_dag.dag_id, TaskInstance.run_id == run_id,
                                            TaskInstance.task_id == task_id,
                                            TaskInstance.map_index == map_index).one()
    ti.try_number += 1
    ti.state = TaskInstanceState.SCHEDULED
    ti.scheduled_dttm = timezone.utcnow()
    session.commit()
    _run_task(ti=ti, task=sdk_dag.task_dict[task_id], run_triggerer=True)
    session.expire_all()
    return str(session.query(TaskInstance).filter(TaskInstance.id == ti.id).one().state)


def in_process_api(app=None):
    """The in-process execution API ``dag.test()``'s task runs talk to (cached by Airflow); given ``app`` (an
    app built before a fork), a new one around it, whose event loop thread runs in this process."""
    from airflow.sdk.execution_time import supervisor

    if app is not None:
        supervisor.in_process_api_server.cache_clear()
        supervisor.in_process_api_server()._app = app
    return supervisor.in_process_api_server()


class MappedAtOnce:
    """Every (cleared) mapped instance of ``task_id`` in ``run`` run at once, each in a process of its own, as
    workers run them (``dag.test()`` runs them one after another). The processes are forks of this one, which
    has Airflow loaded already (a fresh interpreter took 20-30 s per task to start here). ``ended()``: the map
    indexes whose process has ended; ``finish()`` waits for all, and returns each one's task state."""

    def __init__(self, sdk_dag, run, task_id: str):
        from airflow import settings
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState

        with create_session() as session:
            dr = session.query(DagRun).filter(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id).one()
            dr.state = DagRunState.RUNNING
            indexes = sorted(ti.map_index for ti in dr.get_task_instances(session=session) if ti.task_id == task_id)
        settings.engine.dispose()  # no pooled connection shared with the children
        built = in_process_api().app  # the task runner's execution API: built once here, shared by the forks
        self.states: dict = {}
        self.pids = {}
        for i in indexes:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: run the task instance, say its state, leave without Python's exit handlers
                os.close(read)
                state = "crashed"
                try:
                    in_process_api(built)  # its event loop thread did not survive the fork: a new one
                    state = run_one(sdk_dag, run.run_id, task_id, i)
                finally:
                    os.write(write, state.encode())
                    os._exit(0)
            os.close(write)
            self.pids[i] = (pid, read)

    def ended(self) -> list:
        return [i for i, (pid, _) in self.pids.items() if i in self.states or self._reap(i, os.WNOHANG)]

    def _reap(self, i: int, flags: int) -> bool:
        pid, read = self.pids[i]
        if os.waitpid(pid, flags)[0] == 0:
            return False
        self.states[i] = os.read(read, 100).decode() or "crashed"
        os.close(read)
        return True

    def finish(self, timeout: float = 300) -> dict:
        from tests.support.poll import wait_until

        try:
            wait_until(lambda: len(self.ended()) == len(self.pids), "the task processes to end", timeout=timeout,
                       every=0.05)
        finally:
            for i, (pid, _) in self.pids.items():
                if i not in self.states:
                    os.kill(pid, signal.SIGKILL)
                    self._reap(i, 0)
        return dict(self.states)


def set_variable(key: str, value) -> None:
    """Set the Airflow Variable ``key`` to ``value`` (JSON), or delete it (None), in the metadata DB."""
    from airflow.models.variable import Variable

    if value is None:
        Variable.delete(key)
    else:
        Variable.set(key, value, serialize_json=True)


def queue_another_run(dag_id: str) -> None:
    """A run of ``dag_id`` queued behind the running one (what an ingest's handover queues): the stream DAG's
    tasks end early for it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    with create_session() as session:
        session.add(DagRun(dag_id=dag_id, run_id="queued_behind", run_type=DagRunType.MANUAL, state=DagRunState.QUEUED,
                           conf={}))


def get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def post(url, body, token=None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class MakeAirflow:
    """``make airflow`` (``python -m dynadex.airflow_local``) as a child process on a free port, home of its own.

    ``start()`` waits for its banner and reads the URL, the login and the standalone pid from it;
    ``stop()`` sends SIGINT (what Ctrl-C sends) and returns the exit code; ``processes()`` is its process tree.
    Its output is in ``lines``.
    """

    def __init__(self, home: Path, port: int, items: int = 50):
        self.home, self.port, self.items = home, port, items
        self.lines: list[str] = []
        self.proc = None
        self.url = self.user = self.password = None
        self.standalone_pid = None

    def output(self, last: int = 30) -> str:
        return "\n".join(self.lines[-last:])

    def start(self, timeout: float = 600, until: str = "stop ") -> "MakeAirflow":
        """Start it and wait for the line starting with ``until`` (by default the banner's last: it is up)."""
        import threading

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "dynadex.airflow_local", "--home", str(self.home),
                                      "--port", str(self.port), "--items", str(self.items), "--no-writes"],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith(until):
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(timeout) and self.proc.poll() is None, self.output()
        self.standalone_pid = next((int(l.split()[-1]) for l in self.lines if l.startswith("airflow standalone pid ")),
                                   None)
        self.url = next((l.split()[-1] for l in self.lines if l.startswith("Airflow UI")), None)
        self.user, self.password = next((l.split()[1::2] for l in self.lines if l.startswith("login")), (None, None))
        return self

    def processes(self) -> list:
        """The command and every process below it (psutil), as they are now."""
        import psutil

        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def stop(self, timeout: float = 120, fast: bool = False, sig: int = signal.SIGINT) -> int | None:
        """Send ``sig`` (SIGINT: what Ctrl-C sends) and return the exit code; ``timeout`` s without one: kill the
        command and raise TimeoutExpired. ``fast``: SIGKILL Airflow's process group first, for tests whose subject
        is not the clean stop."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        if fast and self.standalone_pid:
            try:
                os.killpg(self.standalone_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
