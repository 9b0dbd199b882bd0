"""Atomic file writes: bytes go to a temporary file, fsynced, then renamed over the target; killed writes' litter
is removed by the next write."""

import contextlib
import errno
import os
import re
import tempfile

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["write_atomically"]


def _file_mode(path):
    """The permissions the saved file gets: the old file's, or the usual ones for a new file (the umask)."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory):
    """Make the rename itself durable; a no-op where directories cannot be opened (Windows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _temporary_name(name):
    """The pattern of the temporary files `save` writes beside `name`: `.<name>.<writer's pid>.<random>.tmp`."""
    return re.compile(re.escape(f".{name}.") + r"(\d{1,10})\.[a-z0-9_]+\.tmp")


def _writer_may_be_alive(temporary, pid):
    """Whether a save may still be writing `temporary`; when in doubt yes, so that a live save is never hurt."""
    if fcntl is None:
        return True  # Windows: no lock to ask, and os.kill(pid, 0) would terminate the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    except (OSError, OverflowError):  # PermissionError: alive under another user
        return True
    else:
        return True  # alive, or its pid reused: the file stays (litter at worst, never a lost save)
    # A writer on another host or in another pid namespace sharing this directory is invisible to
    # os.kill; it holds an exclusive lock on its file until the rename.
    try:
        descriptor = os.open(temporary, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(descriptor)
    return False


def _remove_stale_temporaries(directory, name):
    """Delete the temporary files of earlier saves to `name` that were killed before their rename."""
    pattern = _temporary_name(name)
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False) \
                    and not _writer_may_be_alive(entry.path, int(match[1])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _resolve(path):
    """The file a save to `path` writes: through symlinks, as PyTorch's `open(path, "wb")` does."""
    target = os.path.realpath(path)
    if os.path.islink(target):
        raise OSError(errno.ELOOP, "save: too many levels of symbolic links", path)
    return target


def write_atomically(path, data):
    """Replace the file at `path` by the bytes `data`, atomically: they go to a temporary file in the same
    directory, which is flushed and fsynced, then renamed over `path` (os.replace) and the directory fsynced.
    A failure at any point leaves any previous file at `path` intact and removes the temporary file; the
    temporary files of killed writes to the same path are removed by the next one. A symlink at `path`
    stays: its target is replaced. The file keeps the old file's permissions (a new one gets the umask's)."""
    target = _resolve(path)
    directory, name = os.path.split(target)
    # Before writing, so that the space they hold is free for this write.
    _remove_stale_temporaries(directory, name)
    mode = _file_mode(target)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if fcntl is not None:
                # Held until the rename: tells a cleaner in another pid namespace that this file is live.
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(temporary, mode)
            if fcntl is not None:
                os.replace(temporary, target)
        if fcntl is None:
            os.replace(temporary, target)  # after the close: Windows cannot rename an open file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)
