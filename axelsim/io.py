"""Atomic file writing: nothing is ever left half-written.

Every writer puts its bytes under a temporary name in the destination's own folder (so the
final `os.replace` is a rename on one file system, atomic on POSIX and Windows) and renames it
over the destination only once the content is complete. If anything fails on the way, the
temporary file is removed and the destination is untouched.

Use `atomic_path` when a library insists on writing to a path itself (matplotlib's savefig,
safetensors' save_file); use the `write_*` helpers otherwise.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on a clean exit rename it onto `path`.

    The parent folder is created if needed. `suffix` defaults to the destination's suffix, so
    libraries that choose a format from the file name (matplotlib) still see it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.tmp.", suffix=target.suffix if suffix is None else suffix, dir=target.parent
    )
    os.close(handle)
    temp = Path(temp_name)
    os.chmod(temp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
    try:
        yield temp
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
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
