"""orders.procfile: real ``/bin/sh`` children, real signals, the real exit status."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orders.procfile import ProcfileError, parse, select
from tests.stack import proc_stat
from tests.stack import procfile as stack_procfile

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)  # a supervisor that never stops fails, it does not hang


class Runner:
    """``python -m orders.procfile`` on a Procfile of the test's own, output line by line."""

    def __init__(self, tmp_path: Path, text: str, *args: str, **env: str) -> None:
        (tmp_path / "Procfile").write_text(text)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orders.procfile", "-f", "Procfile", *args],
            cwd=tmp_path,
            env={
                **{k: v for k, v in os.environ.items() if k != "PORT"},
                "PYTHONPATH": str(ROOT),
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def read_until(self, found: Callable[[str], bool]) -> str:
        """The first line ``found`` accepts, read now or already: the lines' processes
        run side by side, so the order of their first lines is not theirs to keep."""
        for line in self.lines:
            if found(line):
                return line
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if found(self.lines[-1]):
                return self.lines[-1]
        raise AssertionError(f"ended before the line was seen: {self.lines}")

    def finish(self) -> int:
        assert self.process.stdout is not None
        with self.process.stdout:
            self.lines += self.process.stdout.read().splitlines()
        return self.process.wait()


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    started: list[Runner] = []
    yield started
    for runner in started:  # a failed test leaves nothing running
        if runner.process.poll() is None:
            runner.process.send_signal(signal.SIGINT)
            try:
                runner.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                runner.process.send_signal(signal.SIGINT)  # the second one kills at once
        if runner.process.stdout and not runner.process.stdout.closed:
            runner.finish()


def wait_gone(pid: int, timeout: float = 30) -> None:
    """Until ``pid`` has ended (reaped, or a zombie waiting for init)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running after {timeout:g} s")


def pid_in(line: str) -> int:
    match = re.search(r"pid=(\d+)", line)
    assert match, line
    return int(match.group(1))


def test_parse_keeps_the_order_and_the_whole_command() -> None:
    text = "# the shop\n\nweb: gunicorn wsgi:app -c gunicorn.conf.py\nworker:python -m x: y\n"
    assert parse(text) == {
        "web": "gunicorn wsgi:app -c gunicorn.conf.py",
        "worker": "python -m x: y",
    }
    assert list(parse(text)) == ["web", "worker"]
    assert parse((ROOT / "Procfile").read_text()) == stack_procfile()


@pytest.mark.parametrize(
    "text, message",
    [
        ("web gunicorn\n", "line 1 is not"),
        ("a: x\n\nb:\n", "line 3 is not"),
        ("a: x\na: y\n", "repeats"),
    ],
)
def test_parse_rejects_a_malformed_procfile(text: str, message: str) -> None:
    with pytest.raises(ProcfileError, match=message):
        parse(text)


def test_select_takes_the_named_lines_or_all() -> None:
    commands = {"a": "x", "b": "y", "c": "z"}
    assert select(commands, ["c", "a"]) == {"c": "z", "a": "x"}
    assert select(commands, []) == commands
    with pytest.raises(ProcfileError, match="not in the Procfile: d"):
        select(commands, ["a", "d"])


def test_named_lines_run_through_sh_with_port_and_prefixed_output(
    tmp_path: Path, runners: list[Runner]
) -> None:
    text = (
        'alpha: echo "port=$PORT pid=$$"; exec sleep 600\n'
        'beta: echo "probe=$SHOP_PROBE pid=$$" >&2; exec sleep 600\n'
        "unused: echo never-started\n"
    )
    runner = Runner(tmp_path, text, "alpha", "beta", PORT="8123", SHOP_PROBE="here")
    runners.append(runner)
    alpha = runner.read_until(lambda line: line.startswith("alpha | port="))
    beta = runner.read_until(lambda line: line.startswith("beta  | probe="))
    assert alpha.startswith("alpha | port=8123 pid=")
    assert beta.startswith("beta  | probe=here pid=")  # stderr too, padded to the longest name
    runner.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert runner.finish() == 0
    for pid in (pid_in(alpha), pid_in(beta)):
        wait_gone(pid)
    assert not any("never-started" in line for line in runner.lines)
    assert "***** | asked to stop: SIGTERM to all, SIGKILL after 10 s (Ctrl-C again: now)" in (
        runner.lines
    )


def test_each_line_has_a_process_group_of_its_own_in_the_runners_session(
    tmp_path: Path, runners: list[Runner]
) -> None:
    """Signalled as a group, and ranked by ``nice`` against the other lines: Linux
    shares the CPU between sessions first (autogroups), so a line in a session of its
    own would get as much as the web whatever its nice value."""
    text = 'web: echo "pid=$$"; exec sleep 600\nworker: echo "pid=$$"; exec nice -n 10 sleep 600\n'
    runner = Runner(tmp_path, text)
    runners.append(runner)
    web = pid_in(runner.read_until(lambda line: line.startswith("web    | pid=")))
    worker = pid_in(runner.read_until(lambda line: line.startswith("worker | pid=")))
    session = os.getsid(runner.process.pid)
    assert os.getsid(web) == os.getsid(worker) == session
    assert len({os.getpgid(web), os.getpgid(worker), os.getpgid(runner.process.pid)}) == 3
    assert os.getpgid(web) == web and os.getpgid(worker) == worker  # the shell leads it
    runner.process.send_signal(signal.SIGTERM)
    assert runner.finish() == 0


def test_a_closed_terminal_stops_every_line_though_the_output_is_gone(
    tmp_path: Path, runners: list[Runner]
) -> None:
    text = 'web: echo "pid=$$"; exec sleep 600\nworker: echo "pid=$$"; exec sleep 600\n'
    runner = Runner(tmp_path, text)
    runners.append(runner)
    web = pid_in(runner.read_until(lambda line: line.startswith("web    | pid=")))
    worker = pid_in(runner.read_until(lambda line: line.startswith("worker | pid=")))
    assert runner.process.stdout is not None
    runner.process.stdout.close()  # the terminal is gone: every write is a broken pipe
    runner.process.send_signal(signal.SIGHUP)
    assert runner.process.wait(timeout=30) == 0
    for pid in (web, worker):
        wait_gone(pid)


def test_port_defaults_to_8000(tmp_path: Path, runners: list[Runner]) -> None:
    runner = Runner(tmp_path, 'web: echo "port=$PORT"; exec sleep 600\n')
    runners.append(runner)
    assert runner.read_until(lambda line: line.startswith("web | port=")) == "web | port=8000"
    runner.process.send_signal(signal.SIGTERM)
    assert runner.finish() == 0


def test_a_stop_waits_for_what_the_shell_started_to_finish(
    tmp_path: Path, runners: list[Runner]
) -> None:
    """``sh -c`` forks (dash does not exec): the shell dies at once on SIGTERM, and the
    runner still waits for the process it started, which shuts down gracefully."""
    graceful = (  # after "ready" it lets go of the output pipe: only the group tells it is up
        "trap 'sleep 1; echo finished > done.txt; exit 0' TERM; echo ready; "
        "exec > /dev/null 2>&1; sleep 600 & wait"
    )
    runner = Runner(tmp_path, f'web: sh -c "{graceful}"; echo after\n')
    runners.append(runner)
    runner.read_until(lambda line: line == "web | ready")
    runner.process.send_signal(signal.SIGINT)
    assert runner.finish() == 0
    assert (tmp_path / "done.txt").read_text() == "finished\n"  # written before the runner left


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path, runners: list[Runner]
) -> None:
    text = "stubborn: trap '' TERM; sleep 600 & echo \"pid=$!\"; wait\n"
    runner = Runner(tmp_path, text, "--grace", "0.5")
    runners.append(runner)
    child = pid_in(runner.read_until(lambda line: line.startswith("stubborn | pid=")))
    runner.process.send_signal(signal.SIGTERM)
    assert runner.finish() == 0  # stopped when asked: not a failure
    assert f"stubborn | exited with code -{int(signal.SIGKILL)}" in runner.lines
    wait_gone(child)  # the whole group got the SIGKILL, the shell's child too


def test_a_second_ctrl_c_kills_without_waiting_for_the_grace_period(
    tmp_path: Path, runners: list[Runner]
) -> None:
    text = "stubborn: trap '' TERM; echo ready; sleep 600 & wait\n"
    runner = Runner(tmp_path, text, "--grace", "3600")
    runners.append(runner)
    runner.read_until(lambda line: line.endswith("| ready"))
    runner.process.send_signal(signal.SIGINT)
    runner.read_until(lambda line: "asked to stop" in line)
    runner.process.send_signal(signal.SIGINT)
    assert runner.finish() == 0
    assert f"stubborn | exited with code -{int(signal.SIGKILL)}" in runner.lines


@pytest.mark.parametrize("code, status", [(3, 3), (0, 1)])
def test_a_process_that_ends_on_its_own_stops_the_rest_and_fails(
    tmp_path: Path, runners: list[Runner], code: int, status: int
) -> None:
    text = (
        'sleeper: echo "pid=$$" > sleeper.pid; exec sleep 600\n'
        f"quitter: while [ ! -s sleeper.pid ]; do sleep 0.05; done; exit {code}\n"
    )
    runner = Runner(tmp_path, text)
    runners.append(runner)
    assert runner.finish() == status
    assert f"quitter | exited with code {code}" in runner.lines
    assert "******* | quitter exited: SIGTERM to all, SIGKILL after 10 s (Ctrl-C again: now)" in (
        runner.lines
    )
    assert f"sleeper | exited with code -{int(signal.SIGTERM)}" in runner.lines
    wait_gone(pid_in((tmp_path / "sleeper.pid").read_text()))


@pytest.mark.parametrize(
    "procfile, names, message",
    [("web: true\n", ["web", "nope"], "not in the Procfile: nope"), (None, [], "Procfile")],
)
def test_a_bad_request_starts_nothing_and_exits_2(
    tmp_path: Path, procfile: str | None, names: list[str], message: str
) -> None:
    if procfile is not None:
        (tmp_path / "Procfile").write_text(procfile)
    result = subprocess.run(
        [sys.executable, "-m", "orders.procfile", *names],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_make_run_starts_the_procfile_lines_with_this_module() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (command,) = [ln for ln in makefile.splitlines() if "-m orders.procfile" in ln]
    names = command.split("-m orders.procfile", 1)[1].split()
    assert names == ["web", "orders", "payments", "notifications", "scheduler"]
    assert set(names) <= set(stack_procfile())
    assert "PORT=$(PORT)" in command
