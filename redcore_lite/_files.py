"""Files a run reads and writes: clear errors for unreadable inputs, exclusive locks, stale
temporary files.

- :func:`readable_file` / :func:`read_json`: a ValueError naming the argument, the path and what
  was wrong (missing, a folder, unreadable, not UTF-8 text, not JSON), never a bare traceback.
- :func:`exclusive`: an exclusive ``fcntl.flock`` on a lock file next to a results file (or in a
  run folder), so that two sweeps on one CSV or two trains on one ``--out`` cannot interleave.
  Non-blocking by default: the second process gets a :class:`LockedError` naming the file and the
  holder's pid at once. The kernel drops the lock when its holder dies (``kill -9`` included), so
  a lock is never stale; the lock file is removed on a clean exit.
- :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`dump_json`: write a file so
  that readers see the old one or the whole new one (temporary file + rename; also re-exported
  by :mod:`redcore_lite.checkpoint`, where they used to live).
- :func:`remove_stale_temps`: the temporary files of atomic writes carry the writer's pid
  (``.NAME.PID.XXXXXXXX.tmp``); the next write of ``NAME`` removes those whose writer is gone (a
  SIGKILL between write and rename).
- :func:`real_path` / :func:`check_not_inputs`: an output is compared with the inputs of the same
  command by real path (symlinks and ``..`` resolved), so that no output can replace an input.
- :func:`replace_files`: move finished files onto their final names with SIGINT and SIGTERM
  held back, so that a command replaces its earlier results only once the new ones are written.

Locks and atomic writes follow symlinks: the lock of ``l.csv -> s.csv`` is the lock of ``s.csv``,
and a write through a symlink replaces the file it points to, not the link.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX (Windows): no locks, and stale temporary files are kept
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockedError", "readable_file", "read_json", "exclusive", "lock_path",
           "remove_stale_temps", "is_temp_of", "pid_alive", "atomic_write_bytes",
           "atomic_write_text", "atomic_write_many", "dump_json", "real_path", "check_not_inputs",
           "replace_files", "signals_held"]


class LockedError(ValueError):
    """Another process holds the lock on a results file or a run folder."""


def readable_file(path: str | os.PathLike, arg: str, allowed: str) -> Path:
    """``path`` as a Path, checked to be an existing, readable regular file.

    Raises:
        ValueError: ``"{arg}: 'path' does not exist | is a folder, not a file | cannot be read
        (reason); allowed: {allowed}"``.
    """
    path = Path(path).expanduser()
    if not str(path) or not path.exists():
        raise ValueError(f"{arg}: {str(path)!r} does not exist; allowed: {allowed}")
    if path.is_dir():
        raise ValueError(f"{arg}: {str(path)!r} is a folder, not a file; allowed: {allowed}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{arg}: {str(path)!r} cannot be read (permission denied); "
                         f"allowed: {allowed}")
    return path


def read_json(path: str | os.PathLike, arg: str, allowed: str) -> Any:
    """The JSON value in ``path``; a ValueError naming the file when it is not UTF-8 JSON."""
    path = readable_file(path, arg, allowed)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{arg}: {str(path)!r} is not UTF-8 text (byte {err.start}: a binary "
                         f"file?); allowed: {allowed}") from None
    except OSError as err:
        raise ValueError(f"{arg}: {str(path)!r} cannot be read ({err.strerror}); "
                         f"allowed: {allowed}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        what = "is empty" if not text.strip() else (
            f"is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})")
        raise ValueError(f"{arg}: {str(path)!r} {what}; allowed: {allowed}") from None


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~``, symlinks and ``..`` resolved (the file itself, whatever it is called);
    a path that does not exist yet is resolved as far as it exists."""
    return Path(os.path.realpath(Path(path).expanduser()))


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of a results file: ``.NAME.lock`` next to the real file (a symlink or a
    relative path to the same file gets the same lock)."""
    target = real_path(target)
    return target.with_name(f".{target.name}.lock")


def check_not_inputs(outputs: Mapping[str, Iterable[str | os.PathLike]],
                     inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Raise if an output file is one of the inputs of the same command (by real path).

    Args:
        outputs: the argument that names them (``"--out"``) -> the files the command would write.
        inputs: the argument that names it (``"--data"``) -> the file it reads (None: not given).
    Raises:
        ValueError: ``"--out: writing 'x' would replace the --data file 'x'; allowed: ..."``.
    """
    given = {arg: (path, real_path(path)) for arg, path in inputs.items() if path is not None}
    for out_arg, paths in outputs.items():
        for path in paths:
            real = real_path(path)
            for in_arg, (src, src_real) in given.items():
                if real == src_real:
                    raise ValueError(f"{out_arg}: writing {str(path)!r} would replace the {in_arg} "
                                     f"file {str(src)!r}; allowed: an {out_arg} that names no "
                                     "input of the command")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine; True where that cannot be
    asked safely: on Windows ``os.kill`` would end the process)."""
    if os.name != "posix":
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it into the lock file."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not written its pid yet"


@contextlib.contextmanager
def exclusive(target: str | os.PathLike, lock: str | os.PathLike, arg: str, what: str,
              wait: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` for the block (the file is created, and removed
    on exit).

    Args:
        target: the results file or folder the lock protects (named in errors).
        lock: the lock file (its folder must exist).
        arg: the argument that named ``target`` (``"--out"``, ``"path"``), for errors.
        what: who holds it (``"sweep"``, ``"train"``): written into the lock file, so that a
            second process's error says who the first one is.
        wait: block until the other holder ends, instead of raising :class:`LockedError`.
    Raises:
        LockedError: another process holds the lock (and not ``wait``).
        ValueError: the lock file cannot be created (a read-only folder).
    """
    lock = Path(lock)
    if fcntl is None:  # no flock on this platform: nothing is locked
        yield
        return
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise ValueError(f"{arg}: cannot write in {str(lock.parent)!r} ({err.strerror}: "
                             f"{lock.name}); allowed: a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LockedError(f"{arg}: {str(target)!r} is in use by another process ({holder}; "
                              f"lock file {lock.name}); allowed: wait until it has finished, "
                              f"or another {arg}") from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the previous holder may have removed the file between our open and our lock
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{what}, pid {os.getpid()} on {socket.gethostname()}".encode())
    except OSError:  # e.g. a file-size limit: the lock itself holds
        pass
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # still locked: a waiter sees the file gone and opens a new one
        os.close(fd)


def is_temp_of(entry: str, name: str) -> int | None:
    """The writer's pid if ``entry`` is a temporary file of an atomic write of ``name``."""
    prefix = f".{name}."
    if not (entry.startswith(prefix) and entry.endswith(".tmp")):
        return None
    pid = entry[len(prefix):-4].split(".", 1)[0]
    return int(pid) if pid.isdigit() else None


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of earlier atomic writes of ``path`` whose writer process is
    gone (killed between write and rename); return what was removed."""
    path = Path(path)
    removed: list[Path] = []
    try:
        entries = os.listdir(path.parent)
    except OSError:
        return removed
    for entry in entries:
        pid = is_temp_of(entry, path.name)
        if pid is not None and not pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / entry)
                removed.append(path.parent / entry)
    return removed


# ---------------------------------------------------------------- atomic writes


def _atomic(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file is ``.NAME.PID.XXXXXXXX.tmp`` next to ``path``; earlier ones whose writer
    died are removed first. A failed write removes its temporary file and leaves ``path`` as it
    was; the OSError names ``path``. A symlink is followed: the file it points to is replaced.
    """
    path = real_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise OSError(err.errno, f"cannot write the file ({err.strerror}); any earlier version "
                      "is unchanged", str(path)) from err
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _write(tmp: str, data: bytes | memoryview) -> None:
    with open(tmp, "wb") as f:  # no fsync: atomic against a killed process, not a power cut
        f.write(data)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block (delivered when it ends), so that a few renames
    are not cut in half; nothing is held where signals cannot be masked (not POSIX, not the
    main thread)."""
    import threading

    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def replace_files(moves: Mapping[Path, Path | None]) -> None:
    """Move each finished file onto its final name (``os.replace``), or remove the final file
    where the source is None (an earlier result the new run does not write), with SIGINT and
    SIGTERM held back meanwhile (:func:`signals_held`)."""
    with signals_held():
        for dst, src in moves.items():
            if src is None:
                Path(dst).unlink(missing_ok=True)
            else:
                os.replace(src, dst)


def atomic_write_many(files: Mapping[str | os.PathLike, str]) -> list[Path]:
    """Write several text files so that all are replaced together: every temporary file is
    written first, then all are renamed (:func:`replace_files`); a failed write changes none."""
    temps: dict[Path, Path] = {}
    try:
        for path, text in files.items():
            path = real_path(path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.many.tmp")
            temps[path] = tmp
            atomic_write_text(tmp, text)
        replace_files(dict(temps))
    except BaseException:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    return list(temps)


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    return _atomic(path, lambda tmp: _write(tmp, data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
