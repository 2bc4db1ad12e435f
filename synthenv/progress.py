"""One progress bar for long work (datasets, evaluations, training): tqdm on stderr, or nothing."""

from __future__ import annotations

import sys


class _Silent:
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0):
    """A tqdm bar of ``total`` ``unit``s on stderr (``update(n)``, ``close()``); a silent stand-in when not
    ``enabled``."""
    if not enabled:
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
