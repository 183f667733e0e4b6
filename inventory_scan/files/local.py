"""Walk local folders quickly: `os.scandir`, one `lstat` per file, and all cores.

Folders are handed out as tasks to a process pool. A worker walks the subtree of its task until it
has listed `BUDGET` entries, then hands the folders it has not reached back, so small folders are
batched and one huge subtree is still shared between workers.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context

from inventory_scan.files.folders import FolderAccumulator, FolderResult

BUDGET = 20_000

DirId = tuple[int, int]


@dataclass(frozen=True)
class Task:
    path: str
    ancestors: frozenset[DirId]  # (st_dev, st_ino) of every folder above: a link back to one is a loop


@dataclass(frozen=True)
class WalkOptions:
    utc_offset: int = 0
    follow_symlinks: bool = False
    root: str = ""  # the scan root, resolved: links are followed out of it, never back over it


def _dir_id(path: str) -> DirId | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def scan_folder(task: Task, options: WalkOptions) -> tuple[FolderResult, list[Task]]:
    """List one folder: its files grouped by pattern, and the subfolders still to walk."""
    folder = FolderAccumulator(task.path, options.utc_offset)
    subdirs: list[Task] = []
    here = _dir_id(task.path)
    ancestors = task.ancestors | {here} if here else task.ancestors
    try:
        listing = os.scandir(task.path)
    except FileNotFoundError:
        folder.warn(task.path, "folder vanished during the scan")
        return folder.result, subdirs
    except OSError as exc:
        folder.warn(task.path, f"cannot list folder: {exc.strerror or exc}")
        return folder.result, subdirs
    stats_for = folder.stats_for
    files = 0
    with listing:
        for entry in listing:
            try:
                # Regular files first: one d_type check on the path almost every entry takes.
                if not entry.is_file(follow_symlinks=False):
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(Task(entry.path, ancestors))
                    elif entry.is_symlink():
                        _symlink(entry, folder, subdirs, ancestors, options)
                    else:
                        folder.warn(entry.path, "not a regular file (device, fifo or socket): skipped")
                    continue
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                folder.warn(entry.path, "file vanished during the scan")
                continue
            except OSError as exc:
                folder.warn(entry.path, f"cannot read file metadata: {exc.strerror or exc}")
                continue
            # The hot path: one dict lookup per file once a name's shape has been seen.
            stats_for(entry.name, entry.path).add(entry.path, info.st_size, info.st_mtime)
            files += 1
    folder.result.files = files
    return folder.result, subdirs


def _symlink(
    entry: os.DirEntry[str],
    folder: FolderAccumulator,
    subdirs: list[Task],
    ancestors: frozenset[DirId],
    options: WalkOptions,
) -> None:
    try:
        target = os.stat(entry.path)
    except OSError:
        folder.warn(entry.path, f"broken symbolic link to {os.readlink(entry.path)!r}: skipped")
        return
    if stat.S_ISDIR(target.st_mode):
        if not options.follow_symlinks:
            folder.warn(entry.path, "symbolic link to a folder not followed (pass --follow-symlinks)")
        elif (target.st_dev, target.st_ino) in ancestors:
            folder.warn(entry.path, "symbolic link loop: the link points back to a folder above it")
        elif reason := _overlaps_root(entry.path, options.root):
            folder.warn(entry.path, f"symbolic link not followed: {reason}")
        else:
            subdirs.append(Task(entry.path, ancestors))
        return
    if stat.S_ISREG(target.st_mode):
        folder.add(entry.name, entry.path, target.st_size, target.st_mtime)


def _overlaps_root(link: str, root: str) -> str | None:
    """Why a folder link must not be walked: it leads above the scan root (which would be walked
    again) or to a folder inside it (walked already); None for a folder elsewhere, like a mount."""
    if not root:
        return None
    target = os.path.realpath(link)
    if target == root or root.startswith(target.rstrip("/") + "/"):
        return f"it leads to {target}, the scan root or a folder above it"
    if target.startswith(root.rstrip("/") + "/"):
        return f"it leads to {target}, inside the scan root, which is walked anyway"
    return None


def walk_subtree(task: Task, options: WalkOptions) -> tuple[list[FolderResult], list[Task]]:
    """Walk from `task` until the budget is spent; return the folders read and those left over."""
    results: list[FolderResult] = []
    pending: deque[Task] = deque([task])
    spent = 0
    while pending and (spent < BUDGET or not results):
        result, subdirs = scan_folder(pending.pop(), options)
        results.append(result)
        pending.extend(subdirs)
        spent += result.files + len(subdirs) + 1
    return results, list(pending)


def walk(
    root: str,
    options: WalkOptions,
    jobs: int,
    on_folder: Callable[[FolderResult], None] | None = None,
) -> Iterator[FolderResult]:
    """Every folder under `root` (itself included), in no particular order."""
    first = Task(root, frozenset())
    if jobs <= 1:
        pending = [first]
        while pending:
            results, more = walk_subtree(pending.pop(), options)
            pending.extend(more)
            yield from _notify(results, on_folder)
        return
    # Fork keeps start-up cheap; the workers only list folders and never touch the parent's threads.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
        running: set[Future[tuple[list[FolderResult], list[Task]]]] = {pool.submit(walk_subtree, first, options)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                results, more = future.result()
                running |= {pool.submit(walk_subtree, task, options) for task in more}
                yield from _notify(results, on_folder)


def _notify(results: list[FolderResult], on_folder: Callable[[FolderResult], None] | None) -> list[FolderResult]:
    if on_folder:
        for result in results:
            on_folder(result)
    return results
