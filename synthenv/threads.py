"""Row-parallel work on a small shared thread pool.

The heavy loops (numba kernels compiled with ``nogil=True``, pocketfft, numpy ufuncs) release the
GIL, so splitting a batch's rows over one thread per core makes them run on every core. Small
batches run in the calling thread: a pool hand-off costs more than it saves for a few sounds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

MIN_ROWS_PER_THREAD = 16
_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def for_row_chunks(fn: Callable[[int, int], None], n_rows: int) -> None:
    """Call ``fn(start, stop)`` over ``[0, n_rows)`` split into one chunk per thread (when the batch
    is big enough), and wait for all; exceptions propagate."""
    global _pool, _pool_pid
    k = min(threads(), n_rows // MIN_ROWS_PER_THREAD)
    if k <= 1:
        fn(0, n_rows)
        return
    if _pool is None or _pool_pid != os.getpid():  # a forked child (SubprocVecEnv) needs its own pool
        _pool, _pool_pid = ThreadPoolExecutor(threads(), thread_name_prefix="synthenv-rows"), os.getpid()
    edges = [n_rows * i // k for i in range(k + 1)]
    futures = [_pool.submit(fn, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    for f in futures:
        f.result()
