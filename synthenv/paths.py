"""Where synthenv keeps files outside run folders: one private directory per user.

Files at predictable paths in a shared temporary directory (``/tmp``) invite another local user to
plant a symlink there first. Everything synthenv keeps between processes (the JACK start-up lock,
the compiled custom-SynthDef cache, the records of the scsynths it started) lives in
``<tempdir>/synthenv-<uid>`` instead: made with mode 0700, and checked on every use to be a real
directory owned by this user that nobody else can enter.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from synthenv.errors import SynthenvError


def private_dir() -> Path:
    """This user's private synthenv directory, ``<tempdir>/synthenv-<uid>`` (made if missing).

    Raises :class:`SynthenvError` if the path exists but is a symlink, not a directory, owned by
    another user, or open to group/others.
    """
    uid = os.getuid()
    path = Path(tempfile.gettempdir()) / f"synthenv-{uid}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SynthenvError(f"could not create synthenv's private directory {path}: {exc}") from None
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise SynthenvError(f"could not inspect synthenv's private directory {path}: {exc}") from None
    problem = None
    if stat.S_ISLNK(st.st_mode):
        problem = f"it is a symlink (to {os.readlink(path)!r}), not a directory"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "it is not a directory"
    elif st.st_uid != uid:
        problem = f"it is owned by uid {st.st_uid}, not by you (uid {uid})"
    elif st.st_mode & 0o077:
        problem = f"its mode is {stat.S_IMODE(st.st_mode):04o}: group or others may use it (expected 0700)"
    if problem:
        raise SynthenvError(
            f"synthenv's private directory {path} is unsafe: {problem}. Someone may have planted it: "
            f"inspect and remove it (synthenv recreates it), or set TMPDIR to a directory only you can write"
        )
    return path
