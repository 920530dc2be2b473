"""Which directories the store may trust, and reading its value files without surprises.

A cache directory holds code that is linked into GPU kernels, so whoever can write it can
choose what runs. The store uses a directory only if no other user can write it, and reads
a value file only if it is a regular file (not a link, FIFO or device) at a name diskcache
itself would have chosen, no larger than the store ever writes.

Opening a FIFO blocks until a writer comes, and SQLite opens its files with a plain blocking
``open``: the index (``cache.db``) and its ``-journal``, ``-wal`` and ``-shm`` files are
therefore checked to be regular files (:func:`index_files_problem`) before SQLite is let near
them, and other files are opened without blocking and checked before they are read
(:func:`open_regular`).
"""

from __future__ import annotations

import os
import re
import stat

#: Largest payload the store writes to, or reads from, disk (LTO-IR is kilobytes to megabytes).
MAX_ENTRY_BYTES = 64 * 2**20

# diskcache names value files "xx/yy/<28 hex>.val" (Disk.filename); nothing else is ours.
_VALUE_NAME = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val")


#: The index and the files SQLite opens beside it.
INDEX = "cache.db"
INDEX_FILES = (INDEX, INDEX + "-journal", INDEX + "-wal", INDEX + "-shm")

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


class UnsafeFile(OSError):
    """A file the store will not read: not a plain, contained, reasonably sized file."""


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, in words ("a regular file", "a FIFO (named pipe)", ...).

    >>> file_kind(stat.S_IFIFO | 0o600)
    'a FIFO (named pipe)'
    """
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else f"a special file (mode {mode:o})"


def index_files_problem(directory: str) -> str | None:
    """Why SQLite must not open the index in ``directory`` (None: each of its files is absent or regular).

    The link is followed, as SQLite follows it. Checked right before SQLite opens the files; a
    directory no other user can write leaves nobody else to swap them in between.
    """
    for name in INDEX_FILES:
        try:
            st = os.stat(os.path.join(directory, name))
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"{name} cannot be examined: {exc.strerror or exc}"
        if not stat.S_ISREG(st.st_mode):
            return (f"{name} is {file_kind(st.st_mode)}, not a regular file, and opening it could block "
                    "or fail; remove it (the cache rebuilds itself)")
    return None


def open_regular(path: str, limit: int) -> int:
    """Open ``path`` for reading without blocking and return the descriptor of a regular file of at
    most ``limit`` bytes; raises :class:`UnsafeFile` saying what it is otherwise, or ``OSError``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)  # a FIFO opened without O_NONBLOCK would wait for a writer
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path!r} is {file_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise UnsafeFile(f"{path!r} holds {st.st_size} bytes, more than the {limit} expected")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def directory_problem(path: str) -> str | None:
    """Why ``path`` cannot be a cache directory: another user could write it, or it is no directory.

    None: only you or root can write it, or it does not exist (creating it decides).

    >>> import tempfile
    >>> directory_problem(tempfile.mkdtemp()) is None
    True
    """
    if not hasattr(os, "geteuid"):
        return None  # Windows: access is decided by ACLs, which mode bits do not show
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # not there: creating it decides
    except OSError as exc:
        return f"it cannot be examined: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return f"it is {file_kind(st.st_mode)}, not a directory"
    uid = os.geteuid()
    if st.st_uid not in (uid, 0):
        return f"it is owned by uid {st.st_uid}, neither you (uid {uid}) nor root, so another user could plant code in it"
    if st.st_mode & 0o022:
        return (f"its mode {stat.S_IMODE(st.st_mode):o} lets group or others write to it, so another user could "
                "plant code in it")
    return None


def value_path(directory: str, name: object) -> str | None:
    """The full path of value file ``name`` inside ``directory``, or None if it is no such name.

    >>> value_path("/c", "ab/cd/" + "0" * 28 + ".val")
    '/c/ab/cd/0000000000000000000000000000.val'
    >>> value_path("/c", "../etc/passwd") is None
    True
    """
    if not isinstance(name, str):
        return None
    if os.sep != "/":
        name = name.replace(os.sep, "/")
    if not _VALUE_NAME.fullmatch(name):
        return None
    return os.path.join(directory, *name.split("/"))


def read_value(directory: str, name: object, limit: int = MAX_ENTRY_BYTES) -> bytes:
    """The bytes of value file ``name``; raises :class:`UnsafeFile` or ``OSError``.

    The file is opened without following a link and without blocking (a FIFO would hang a
    plain ``open``), then checked to be a regular file of at most ``limit`` bytes.
    """
    path = value_path(directory, name)
    if path is None:
        raise UnsafeFile(f"{name!r} is not a value file name of this cache")
    parent = os.path.dirname(path)
    if os.path.realpath(parent) != os.path.join(os.path.realpath(directory), *name.split("/")[:2]):
        raise UnsafeFile(f"{name!r} lies below a link")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{name!r} is {file_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise UnsafeFile(f"{name!r} holds {st.st_size} bytes, more than the {limit} an entry may")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFile(f"{name!r} grew past {limit} bytes while read")
    return data


def remove_value(directory: str, name: object) -> None:
    """Remove value file ``name`` and its emptied sub-directories; ignore any other name."""
    path = value_path(directory, name)
    if path is None:
        return
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.remove(path)
        for sub in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
            os.rmdir(sub)  # fails, harmlessly, while other values live there
    except OSError:
        pass


def remove_all_values(directory: str) -> int:
    """Remove every value file of ``directory`` (an index rebuilt from scratch lists none)."""
    removed = 0
    hex2 = re.compile(r"[0-9a-f]{2}")
    try:
        tops = [d for d in os.listdir(directory) if hex2.fullmatch(d)]
    except OSError:
        return 0
    for top in tops:
        try:
            subs = [d for d in os.listdir(os.path.join(directory, top)) if hex2.fullmatch(d)]
        except OSError:
            continue
        for sub in subs:
            try:
                names = os.listdir(os.path.join(directory, top, sub))
            except OSError:
                continue
            for name in names:
                if value_path(directory, f"{top}/{sub}/{name}") is not None:
                    remove_value(directory, f"{top}/{sub}/{name}")
                    removed += 1
    return removed
