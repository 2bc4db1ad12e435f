"""Private JACK dummy servers for the live backend on machines without a running JACK server
(headless machines, CI), and the fixed pool of names they take.

JACK's shared-memory registry (``/dev/shm/jack-shm-registry``) holds :data:`JACK_MAX_SERVERS`
servers. A killed server keeps its slot until a server of the same name starts again, so our
servers take names from a fixed pool (``synthenv-<uid>-0`` .. ``-7``): a new server reclaims the
slot (and the shared memory) a killed one of ours left. Other programs' registrations and files are
never touched. Start-ups are serialised across processes by a lock file in the user's private
directory (:func:`synthenv.paths.private_dir`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from synthenv.errors import BackendError
from synthenv.paths import private_dir
from synthenv.processes import BOOT_TIMEOUT, OwnedProcess, command_lines, flag_values

JACK_MAX_SERVERS = 8  # JACK's shared-memory registry holds this many servers
SHM = Path("/dev/shm")


@contextlib.contextmanager
def jack_start_lock() -> Iterator[None]:
    """Serialise JACK server start-ups across processes (SubprocVecEnv workers boot at once)."""
    path = private_dir() / "jack.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BackendError(f"could not open the JACK start-up lock {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def jackd_names_in_use() -> set[str]:
    """The ``-n`` names of every jackd process on this machine (a stopped or still-booting one counts)."""
    return {name for args in command_lines("jackd") for name in flag_values(args, "-n", "--name")}


def jack_running(name: str | None = None) -> bool:
    """Whether a JACK server (the default one, or the one called ``name``) answers."""
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    if name:
        env["JACK_DEFAULT_SERVER"] = name
    try:
        return subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pool_names() -> list[str]:
    """The names our private JACK servers take, in the order they are tried."""
    return [f"synthenv-{os.getuid()}-{k}" for k in range(JACK_MAX_SERVERS)]


def remove_leftovers(name: str) -> None:
    """Remove the semaphores and sockets a killed JACK server called ``name`` (one of ours, not running)
    and its killed clients left in /dev/shm: ``jack_sem.<uid>_<name>_*`` and ``jack_<name>_*``. Its
    shared-memory segments (``jack-<uid>-<k>``) are reclaimed by JACK when a server of that name starts."""
    if name not in pool_names():
        raise ValueError(f"{name!r} is not one of synthenv's JACK server names")
    for pattern in (f"jack_sem.{os.getuid()}_{name}_*", f"jack_{name}_*"):
        for p in SHM.glob(pattern):
            with contextlib.suppress(OSError):
                p.unlink()


def start_private_jackd(sample_rate: int, env: dict[str, str]) -> tuple[OwnedProcess, str]:
    """Start a private JACK dummy server at ``sample_rate``; return it and its name.

    Call under :func:`jack_start_lock`. A pool name whose last server died but is not yet reaped
    (JACK counts a zombie as alive) gives 'server already active': the next name is tried."""
    in_use = jackd_names_in_use()
    for name in set(pool_names()) - in_use:
        remove_leftovers(name)
    failures: list[str] = []
    for name in pool_names():
        if name in in_use:
            continue
        # SIGKILL when our process dies: on SIGTERM jackd waits up to 6 s for its scsynth client,
        # dying at the same moment, to deactivate. The registry slot it leaves is reclaimed by the
        # next server of this name.
        jackd = OwnedProcess(
            ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(sample_rate), "-p", "256"],
            dict(env, JACK_NO_START_SERVER="1"), "jackd", death_signal=signal.SIGKILL,
        )  # fmt: skip
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not jack_running(name):
            if not jackd.alive or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            return jackd, name
        exited = not jackd.alive
        jackd.stop()
        log = jackd.tail()
        failures.append(f"{name}: " + (f"exit code {jackd.proc.returncode}" if exited else "no answer") + f"\n{log}")
        if "too many servers" in log.lower():
            raise BackendError(
                f"JACK's server registry ({SHM / 'jack-shm-registry'}) is full ({JACK_MAX_SERVERS} servers): "
                "other programs' JACK servers, running or killed, hold its slots. Stop them; if no JACK server "
                f"runs at all, removing that file frees the slots of killed ones. Or start one JACK server and "
                f"use jack='system'.\n{log}"
            )
        if not exited:  # a jackd that hangs would hang under the next name too
            raise BackendError(f"the JACK dummy server did not start within {BOOT_TIMEOUT:.0f} s:\n{log}")
        # it exited: 'server already active' (a killed server of this name not yet reaped, which JACK
        # counts as alive), or a start that failed quietly next to a dying server: try the next name
    if failures:
        raise BackendError("the JACK dummy server did not start under any free name of synthenv's pool:\n"
                           + "\n".join(failures))  # fmt: skip
    raise BackendError(
        f"no JACK server slot is free (JACK allows {JACK_MAX_SERVERS} servers; running: {sorted(in_use)}): "
        f"close some live envs, or start one JACK server and use jack='system'"
    )
