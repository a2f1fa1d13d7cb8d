"""Files that a crash, a full disk or a power loss leaves whole: the old version or the new one, never a part.

    write_atomic(path, lambda tmp: tmp.write_bytes(data))    # write(tmp) fills the temporary file
    write_text_atomic(path, text)                             # report.md, summary.json, report.html (UTF-8)

checkpoints.save_atomic writes checkpoints and the decoded-image cache through write_atomic. When a write fails
anyway, one_line(error) says so in one line; format_warning puts a warning on one console line.
"""

import contextlib
import os
from pathlib import Path


def write_atomic(path, write, shared=False):
    """Write `path` through a temporary file beside it: write(tmp) fills it, an fsync puts its bytes on disk,
    os.replace swaps it in, and an fsync of the folder makes the new name survive a power loss too. On any failure
    the temporary file is removed, `path` is left as it was and the error is raised again. -> path.

    shared: several processes may write the file at once (the decoded-image cache under torchrun), so each gets a
    temporary name of its own (with its process id). Otherwise the name is always the same: what a killed process
    leaves half-written is replaced by the next write, not piled up beside it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp" if shared else f".{path.name}.tmp")
    try:
        write(tmp)
        fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def write_text_atomic(path, text):
    """write_atomic of a text file, in UTF-8 whatever the locale."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def fsync(path):
    fd = os.open(path, os.O_RDWR)  # Windows flushes only a handle open for writing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder):
    """fsync a folder, so that a rename inside it is on disk; nothing where the OS cannot (Windows opens no folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def one_line(error):
    """An exception as one line: its type and the first line of its message (torch's can run to many)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def format_warning(message, category, filename, lineno, line=None):
    """A warning as one console line, `warning (DataWarning): ...` (set as warnings.formatwarning)."""
    return f"warning ({category.__name__}): {message}\n"
