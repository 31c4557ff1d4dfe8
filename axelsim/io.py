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
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from axelsim.errors import UserError


class OutputError(UserError, OSError):
    """An output file or folder the OS refuses; one line naming the path (exit status 2).

    Also an OSError, so code that guards a write with `except OSError` still catches it.
    """

    def __init__(self, source: str, where: str, expected: str, errno_code: int | None = None):
        UserError.__init__(self, source, where, expected)
        self.errno = errno_code


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
    """Fail early (OutputError) when `path` obviously cannot be written: an existing ancestor is
    not a folder, or the path is a folder where a file is wanted (or a file where a folder is).

    A cheap check before a long run; the writers still report anything it cannot foresee.
    """
    target = Path(path)
    try:
        if target.exists() and target.is_dir() != folder:
            reason = "Is a directory" if not folder else "Not a directory"
            raise OutputError(_printable(target), "", f"cannot write: {reason}")
        for parent in target.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(_printable(target), "", f"cannot write: {_printable(parent)} is not a directory")
                break
    except OutputError:
        raise
    except OSError as error:
        raise output_error(target, error) from None
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on a clean exit rename it onto `path`.

    The parent folder is created if needed. `suffix` defaults to the destination's suffix, so
    libraries that choose a format from the file name (matplotlib) still see it. Any OSError on
    the way (creating the folder, the temporary file, writing inside the block, the rename)
    becomes an OutputError naming `path`; the temporary file is removed.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.tmp.", suffix=target.suffix if suffix is None else suffix, dir=target.parent
        )
        os.close(handle)
    except OSError as error:
        raise output_error(target, error) from None
    temp = Path(temp_name)
    try:
        os.chmod(temp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        yield temp
        os.replace(temp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(error, OSError):
            raise output_error(target, error) from None
        raise


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
