"""Run Procfile lines side by side in the foreground (what ``make run`` starts).

    python -m orders.procfile [-f Procfile] [--grace SECONDS] [NAME ...]

Each named line (every line when none is named) runs through ``/bin/sh -c`` with this
environment plus ``PORT`` (from the environment, else 8000), in a process group of its
own; every output line comes back prefixed with the line's name. Ctrl-C, SIGTERM or a
closed terminal (SIGHUP) stops them all: SIGTERM to each group, SIGKILL to what is left
after the grace period (a second Ctrl-C skips the wait). Output that can no longer be
written (a closed pipe or terminal) is dropped; the stop goes on. A process that ends
on its own stops the others too, and the exit status is then non-zero (its own, or 1 if
it exited 0).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import IO

LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(\S.*)$")
DEFAULT_PORT = "8000"
DEFAULT_GRACE_SECONDS = 10.0


class ProcfileError(Exception):
    """The Procfile is malformed or does not name what was asked for."""


def parse(text: str) -> dict[str, str]:
    """The Procfile's ``name: command`` lines, in order; blank lines and # comments skipped."""
    commands: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = LINE.match(line)
        if not match:
            raise ProcfileError(f"line {number} is not 'name: command': {line!r}")
        name, command = match.groups()
        if name in commands:
            raise ProcfileError(f"line {number} repeats the name {name!r}")
        commands[name] = command
    return commands


def select(commands: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The named lines (all of them when no name is given)."""
    wanted = list(names) or list(commands)
    unknown = [name for name in wanted if name not in commands]
    if unknown:
        raise ProcfileError(f"not in the Procfile: {', '.join(unknown)}")
    return {name: commands[name] for name in wanted}


class Supervisor:
    """Starts the lines, relays their output, and stops them all together."""

    def __init__(self, commands: Mapping[str, str], env: Mapping[str, str], out: IO[str]):
        self.commands = dict(commands)
        self.env = dict(env)
        self.out = out
        self.width = max(map(len, self.commands), default=0)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.threads: list[threading.Thread] = []
        self.write_lock = threading.Lock()
        self.changed = threading.Event()  # a process ended on its own
        self.stopping = False
        self.stop_signals = 0
        self.died: list[tuple[str, int]] = []  # ended on their own, before any stop
        self.out_lost = False  # the reader went away: the lines still run, and stop

    def say(self, name: str, text: str) -> None:
        with self.write_lock:
            if self.out_lost:
                return
            try:
                self.out.write(f"{name:<{self.width}} | {text}\n")
                self.out.flush()
            except OSError:  # the reader went away (BrokenPipeError): drop what is left
                self.out_lost = True
                self.silence()

    def silence(self) -> None:
        """Point the output at /dev/null, so that the flush at exit does not fail too
        (what Python's documentation advises for a broken pipe)."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # an output without a file descriptor
            pass

    def note(self, text: str) -> None:
        self.say("*" * self.width, text)

    def start(self) -> None:
        for name, command in self.commands.items():
            process = subprocess.Popen(
                ["/bin/sh", "-c", command],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # a process group of its own (we signal it, the terminal does not) in our
                # session: Linux's scheduler shares the CPU between sessions first
                # (autogroups), so in a session of its own a `nice -n 10` consumer
                # would get as much as the web
                process_group=0,
            )
            self.processes[name] = process
            self.say(name, f"started with pid {process.pid}: {command}")
            for target in (self.relay, self.await_exit):
                thread = threading.Thread(target=target, args=(name, process), daemon=True)
                thread.start()
                self.threads.append(thread)

    def relay(self, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self.say(name, raw.decode("utf-8", "replace").rstrip("\r\n"))

    def await_exit(self, name: str, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        with self.write_lock:
            if not self.stopping:
                self.died.append((name, code))
            self.changed.set()
        self.say(name, f"exited with code {code}")

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        # A signal handler: it takes no lock (the main thread may hold one when it runs).
        self.stop_signals += 1
        if self.stop_signals > 1:
            self.signal_all(signal.SIGKILL)  # asked twice: no grace

    def signal_all(self, signum: signal.Signals) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                pass

    def running(self) -> bool:
        """Whether any group still has a process: the shell may be gone while what it
        started (it forks, it does not exec) is still shutting down."""
        for process in self.processes.values():
            try:
                os.killpg(process.pid, 0)
                return True
            except ProcessLookupError:
                pass
        return False

    def wait_until(self, deadline: float) -> None:
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)

    def run(self, grace: float) -> int:
        """Start every line, wait for a stop or a death, stop the rest; the exit status."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.request_stop)
        try:
            self.start()
            while not self.stop_signals and not self.died:
                self.changed.wait(0.2)  # a death sets it at once; a signal is seen within 0.2 s
        finally:
            with self.write_lock:
                self.stopping = True
            why = f"{self.died[0][0]} exited" if self.died else "asked to stop"
            self.note(f"{why}: SIGTERM to all, SIGKILL after {grace:g} s (Ctrl-C again: now)")
            self.signal_all(signal.SIGTERM)
            self.wait_until(time.monotonic() + grace)
            self.signal_all(signal.SIGKILL)
            for process in self.processes.values():
                process.wait()
            self.wait_until(time.monotonic() + 5.0)  # the killed, until reaped
            flushed = time.monotonic() + 2.0  # the last output; a detached grandchild may hold
            for thread in self.threads:  # its pipe open for ever, so not longer than that
                thread.join(timeout=max(0.0, flushed - time.monotonic()))
        if not self.died:
            return 0
        code = self.died[0][1]
        return code if code > 0 else 1 if code == 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orders.procfile", description=__doc__)
    parser.add_argument("-f", "--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE_SECONDS, metavar="SECONDS")
    parser.add_argument("names", nargs="*", metavar="NAME")
    args = parser.parse_args(argv)
    try:
        commands = select(parse(args.procfile.read_text()), args.names)
    except (OSError, ProcfileError) as exc:
        print(f"procfile: {exc}", file=sys.stderr)
        return 2
    env = {**os.environ, "PORT": os.environ.get("PORT", DEFAULT_PORT)}
    env.setdefault("PYTHONUNBUFFERED", "1")  # log lines as they happen, not per 8 KiB
    return Supervisor(commands, env, sys.stdout).run(args.grace)


if __name__ == "__main__":
    sys.exit(main())
