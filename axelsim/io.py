"""Atomic file writing: nothing is ever left half-written.

Every writer puts its bytes under a temporary name in the destination's own folder (so the
final `os.replace` is a rename on one file system, atomic on POSIX and Windows) and renames it
over the destination only once the content is complete. If anything fails on the way, the
temporary file is removed and the destination is untouched.

Use `atomic_path` when a library insists on writing to a path itself (matplotlib's savefig,
safetensors' save_file); use the `write_*` helpers otherwise.

An output the operating system refuses (a folder where a file should go, a path through a
regular file, no permission, a full disk, a name too long) is bad input, not a fault: every
writer here raises `OutputError` (a UserError, and still an OSError) naming the destination,
e.g. `out/report.json: cannot write: No space left on device`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from axelsim.errors import UserError


class OutputError(UserError, OSError):
    """An output file or folder the OS refuses; one line naming the path (exit status 2).

    Also an OSError, so code that guards a write with `except OSError` still catches it.
    """

    def __init__(self, source: str, where: str, expected: str, errno_code: int | None = None):
        UserError.__init__(self, source, where, expected)
        self.errno = errno_code

    def __reduce__(self):
        return type(self), (self.source, self.where, self.expected, self.errno)


class NotRegularFile(OSError):
    """An input path that is not a regular file (a FIFO, a device, a folder, a socket).

    An OSError whose `strerror` says what the path is, so readers that already turn an
    OSError into one line (`cannot read X: <strerror>`) report it without a special case.
    """


def _kind_name(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open an input file for binary reading; only a regular file (or a symlink to one) opens.

    The file is opened without blocking (a FIFO with no writer would otherwise hang the open)
    and checked on the open descriptor (no race between the check and the read): a FIFO,
    /dev/zero, a folder or a socket raises NotRegularFile. Other failures raise the OSError.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, f"expected a regular file, it is {_kind_name(mode)}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of a regular input file of at most `max_bytes` (see `open_regular`).

    A larger file raises NotRegularFile (EFBIG): at once when its size says so (a 64 GiB sparse
    file is not read at all), else after at most max_bytes + 1 bytes (a file growing while read),
    so a huge or endless input costs bounded time and memory.
    """
    with open_regular(path) as stream:
        if os.fstat(stream.fileno()).st_size > max_bytes:
            raise NotRegularFile(errno.EFBIG, f"expected a file of at most {max_bytes} bytes")
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise NotRegularFile(errno.EFBIG, f"expected a file of at most {max_bytes} bytes")
    return data


def _printable(text: object) -> str:
    """`text` with non-printable characters (line breaks, tabs, NUL) escaped, for one-line messages."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def output_error(path: str | os.PathLike, error: OSError) -> OutputError:
    """The OutputError for an OSError met while writing `path` (an OutputError is kept as it is)."""
    if isinstance(error, OutputError):
        return error
    reason = error.strerror or type(error).__name__
    return OutputError(_printable(path), "", f"cannot write: {_printable(reason)}", error.errno)


def check_writable(path: str | os.PathLike, folder: bool = False) -> Path:
    """Fail early (OutputError) when `path` cannot be written, before any long work.

    A file output must be new, a regular file (or a symlink to one), a character device or a
    FIFO (see `destination`); a folder output must be a folder or new. The folder that will
    receive the file (or the nearest existing ancestor of a new one) must accept a new file:
    this is probed by creating and removing a temporary file there, which catches read-only
    and pseudo file systems (/proc, /sys) and missing permissions, even for root.
    """
    target = Path(path)
    try:
        if folder:
            if target.exists() and not target.is_dir():
                raise OutputError(_printable(target), "", "cannot write: Not a directory", errno.ENOTDIR)
            _probe(target, target if target.is_dir() else None)
            return target
        kind, real = destination(target)
        if kind in ("new", "regular"):
            _probe(target, real.parent if real.parent.is_dir() else None)
        elif kind == "char":
            os.close(_open_direct(target, kind))
    except OutputError:
        raise
    except OSError as error:
        raise output_error(target, error) from None
    return target


def _probe(target: Path, folder: Path | None) -> None:
    """Create and remove a temporary file in `folder` (or, when it does not exist yet, in the
    nearest existing ancestor of `target`, which must be a folder)."""
    if folder is None:
        for parent in target.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(_printable(target), "", f"cannot write: {_printable(parent)} is not a directory",
                                      errno.ENOTDIR)
                folder = parent
                break
        else:
            folder = Path(".")
    handle, name = tempfile.mkstemp(prefix=".axelsim-probe.", dir=folder)
    os.close(handle)
    os.unlink(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path for the new content of `path`; on a clean exit, put it in place.

    What "in place" means depends on what `path` is now (see `destination`):
    - a regular file or a new name: the temporary file sits next to the destination and is
      renamed over it (atomic); a symlink is followed, so the file it names is replaced and
      the link itself stays;
    - a character device (/dev/null, /dev/full, a terminal) or a FIFO with a reader: the
      finished bytes are copied into it (never replaced by a regular file);
    - anything else (a block device, a socket, a FIFO nobody reads): refused up front.

    The parent folder is created if needed. `suffix` defaults to the destination's suffix, so
    libraries that choose a format from the file name (matplotlib) still see it. Any OSError on
    the way becomes an OutputError naming `path`; the temporary file is removed.
    """
    target = Path(path)
    kind, real = destination(target)
    folder = real.parent if kind in ("new", "regular") else None
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.tmp.", suffix=target.suffix if suffix is None else suffix, dir=folder
        )
        os.close(handle)
    except OSError as error:
        raise output_error(target, error) from None
    temp = Path(temp_name)
    try:
        os.chmod(temp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        yield temp
        if folder is not None:
            os.replace(temp, real)
        else:
            _copy_into(temp, target, kind)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(error, OSError):
            raise output_error(target, error) from None
        raise
    finally:
        if folder is None:
            with contextlib.suppress(OSError):
                temp.unlink()


def destination(path: str | os.PathLike) -> tuple[str, Path]:
    """What an output path is now, and the path a rename must target.

    Returns (kind, real): kind "new" (nothing there yet, or a dangling symlink), "regular",
    "char" (a character device) or "fifo"; `real` is the path with symlinks resolved, so a
    link is written through. Raises OutputError for a folder, a block device, a socket, or a
    path the OS refuses to look at.
    """
    target = Path(path)
    try:
        info = os.stat(target)  # follows symlinks
    except FileNotFoundError:
        return "new", Path(os.path.realpath(target))
    except OSError as error:
        raise output_error(target, error) from None
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return "regular", Path(os.path.realpath(target))
    if stat.S_ISCHR(mode):
        return "char", target
    if stat.S_ISFIFO(mode):
        return "fifo", target
    if stat.S_ISDIR(mode):
        raise OutputError(_printable(target), "", "cannot write: Is a directory", errno.EISDIR)
    raise OutputError(_printable(target), "", f"cannot write: it is {_kind_name(mode)} (expected a regular "
                      "file, a character device or a FIFO)")


def _open_direct(path: Path, kind: str) -> int:
    """A write descriptor on a character device or a FIFO; a FIFO with no reader is refused at
    once (O_NONBLOCK gives ENXIO) instead of blocking until someone reads it."""
    if kind == "fifo":
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno == errno.ENXIO:
                raise OutputError(_printable(path), "", "cannot write: a FIFO with no reader") from None
            raise
        os.set_blocking(fd, True)
        return fd
    return os.open(path, os.O_WRONLY)


def _copy_into(temp: Path, target: Path, kind: str) -> None:
    """Stream the finished temporary file into a character device or FIFO (ENOSPC etc. raise)."""
    fd = _open_direct(target, kind)
    try:
        with open(temp, "rb") as source:
            while chunk := source.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (flushed and fsynced before the rename)."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))


FIGURE_SALT = "axelsim"
"""matplotlib's `svg.hashsalt`: with a fixed salt the SVG clip-path and marker ids are the same in every run."""


def write_figure(figure: Any, path: str | os.PathLike, **savefig: Any) -> Path:
    """Save a matplotlib Figure to `path` atomically, byte-identical between identical runs.

    The format comes from the suffix. SVG ids are salted with FIGURE_SALT and dated nowhere,
    PNG carries no software stamp; both are set for this call only (`rc_context`), so no
    global matplotlib state changes. `savefig` keywords (dpi, bbox_inches...) pass through.
    """
    from matplotlib import rc_context

    target = Path(path)
    fmt = savefig.pop("format", None) or target.suffix.lstrip(".").lower() or "png"
    savefig.setdefault("metadata", {"Date": None} if fmt == "svg" else {"Software": None} if fmt == "png" else {})
    with rc_context({"svg.hashsalt": FIGURE_SALT}), atomic_path(target) as temp:
        figure.savefig(temp, format=fmt, **savefig)
    return target


def to_json_text(value: Any) -> str:
    """Canonical JSON: 2-space indent, keys in insertion order, a final newline.

    Non-finite floats are written as null (JSON has no NaN); numpy scalars and arrays are
    converted to plain Python numbers and lists. The same value always gives the same text.
    """
    return json.dumps(_plain(value), indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write `value` as canonical JSON (see `to_json_text`) to `path` atomically."""
    return write_text(path, to_json_text(value))


def _plain(value: Any) -> Any:
    """A JSON-ready copy of `value` (dicts, lists, str, int, float, bool, None)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
