"""Mapping a function over region sets in parallel, with a progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed


def available_cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_map[T, R](
    func: Callable[[T], R],
    items: Sequence[T],
    *,
    n_jobs: int | Executor | None,
    desc: str,
    unit: str = "file",
) -> list[R]:
    """``[func(x) for x in items]``, in parallel, in order.

    ``n_jobs``: ``None`` uses every available core, ``1`` runs in this thread, any other integer is a thread
    count, and a :class:`concurrent.futures.Executor` (e.g. ``dask.distributed.Client.get_executor()``) is used
    as given. Threads suffice locally: reading and overlapping release the GIL.
    """
    if isinstance(n_jobs, Executor):
        return _run(n_jobs, func, items, desc, unit)
    workers = available_cores() if n_jobs is None else int(n_jobs)
    if workers < 1:
        raise ValueError(f"n_jobs must be >= 1 or None, got {n_jobs}")
    workers = min(workers, len(items))
    if workers <= 1 and _quiet_bar(items):  # one query: no bar, and tqdm is not even loaded
        return [func(item) for item in items]
    from tqdm.auto import tqdm

    if workers <= 1:
        return [func(item) for item in tqdm(items, desc=desc, unit=unit, disable=_quiet_bar(items))]
    with ThreadPoolExecutor(max_workers=workers) as executor:
        return _run(executor, func, items, desc, unit)


def _run(executor: Executor, func, items, desc, unit):
    from tqdm.auto import tqdm

    futures = {executor.submit(func, item): i for i, item in enumerate(items)}
    results = [None] * len(items)
    try:
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit=unit, disable=_quiet_bar(items)):
            results[futures[future]] = future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return results


def _quiet_bar(items) -> bool:
    """No bar for a single item, nor where the user turned tqdm's bars off (``TQDM_DISABLE``, tqdm's own setting)."""
    return len(items) < 2 or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
