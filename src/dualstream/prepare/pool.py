"""The worker pool of preparation and packing: spawned workers that end with their parent (even on SIGKILL),
replaced every ``TASKS_PER_WORKER`` tasks, and a crash that names its task instead of ending the run."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from multiprocessing import get_context
from typing import Callable, Iterator

import cv2

TASKS_PER_WORKER = 500  # a worker process is replaced after this many videos (bounds slow leaks in codecs)


def die_with_parent(parent: int) -> None:
    """Worker initialiser: the worker ends when its parent ``parent`` dies, even by SIGKILL (PR_SET_PDEATHSIG on
    Linux, and a watchdog thread), so no orphan goes on writing into the cache while a rerun redoes its video."""
    if sys.platform.startswith("linux"):
        import ctypes

        with suppress(OSError, AttributeError):  # no such libc: the watchdog alone
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    cv2.setNumThreads(1)


WORKER_DIED = "the worker process died while preparing this video (a crash in the decoder, or killed, e.g. out of memory)"


def new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=die_with_parent,
                               initargs=(os.getpid(),), max_tasks_per_child=TASKS_PER_WORKER)


def run_processes(todo: list, workers: int, job: Callable) -> Iterator[tuple[str, str | None, int, int]]:
    """Results of ``job`` over ``todo`` from a process pool, as they complete. A worker that dies (a codec's
    segfault, the OOM killer) breaks the pool: the first ``workers + 1`` unfinished tasks are retried one at a
    time, one that kills its worker again failing (WORKER_DIED), and the rest go on in a fresh pool."""
    if workers == 1 or len(todo) <= 1:
        yield from map(job, todo)
        return
    queue = list(todo)
    while queue:
        unfinished: list[int] = []
        pool = new_pool(workers)
        try:
            futures = {pool.submit(job, args): k for k, args in enumerate(queue)}
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    unfinished.append(futures[fut])
        finally:
            pool.shutdown(cancel_futures=True)
        unfinished.sort()
        suspects = [queue[k] for k in unfinished[: workers + 1]]
        queue = [queue[k] for k in unfinished[workers + 1:]]
        alone = None  # one worker, one video at a time (a break names its video); a new one only after a break
        try:
            for args in suspects:
                alone = alone or new_pool(1)
                try:
                    yield alone.submit(job, args).result()
                except BrokenProcessPool:
                    yield args[0], WORKER_DIED, 0, 0
                    alone.shutdown()
                    alone = None
        finally:
            if alone is not None:
                alone.shutdown(cancel_futures=True)
