"""Child processes we own (scsynth, jackd): started with their output collected by a thread, stopped
by :meth:`OwnedProcess.stop`, at interpreter exit (a finalizer), and (Linux) when the thread that
started them dies (``PR_SET_PDEATHSIG``). Also: which programs run on this machine, from ``/proc``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path

from synthenv.errors import BackendError

BOOT_TIMEOUT = 15.0  # how long a server we start may take to become ready, in seconds


def die_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn asking Linux to send ``sig`` to the child when the thread that started it exits."""

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG

    return preexec


class OwnedProcess:
    """A child process we own: output collected by a thread, stopped on close/exit/parent death."""

    def __init__(self, cmd: list[str], env: dict[str, str], name: str, death_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.output: deque[str] = deque(maxlen=200)
        try:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                env=env, preexec_fn=die_with_parent(death_signal) if os.name == "posix" else None,
            )  # fmt: skip
        except OSError as exc:
            raise BackendError(f"could not start {name} ({cmd[0]}): {exc}") from None
        self.lines = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name=f"synthenv-{name}-output").start()
        self._finalizer = weakref.finalize(self, stop_process, self.proc)

    def _read(self) -> None:
        try:
            for line in self.proc.stdout:
                with self.lines:
                    self.output.append(line.rstrip())
                    self.lines.notify_all()
        except (OSError, ValueError):  # the pipe went away with the process
            pass
        finally:
            self.proc.stdout.close()

    def wait_for_line(self, text: str, timeout: float) -> bool:
        """Wait until a line of output contains ``text``: False if the process exited or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self.lines:
            while not any(text in line for line in self.output):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    return False
                self.lines.wait(0.05)
        return True

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, n: int = 15) -> str:
        """The last ``n`` lines of output."""
        return "\n".join(list(self.output)[-n:])

    def stop(self) -> None:
        self._finalizer()


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 3 s; reaps the process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


def command_lines(program: str) -> list[list[str]]:
    """The argument lists of every running process whose program file is named ``program`` (read from
    /proc, so a stopped or still-booting process counts too)."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if os.path.basename(args[0]) == program:
            out.append(args)
    return out


def flag_values(args: list[str], *flags: str) -> list[str]:
    """The values that follow any of ``flags`` in an argument list (``-n NAME`` -> ``NAME``)."""
    return [value for flag, value in zip(args, args[1:], strict=False) if flag in flags]
