"""User-facing errors: each names the file, the key or tensor, and what was expected.

The CLI maps every `UserError` to one line on stderr and exit status 2; anything else is an
internal fault (exit 1).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a file, a key or tensor inside it, and the expectation."""

    def __init__(self, source: str, where: str, expected: str):
        self.source = str(source)
        self.where = str(where)
        self.expected = str(expected)
        super().__init__(self.line())

    def __reduce__(self):
        """Pickled with its three parts (a worker process's error reaches the main process whole)."""
        return type(self), (self.source, self.where, self.expected)

    def line(self) -> str:
        """The one line printed on stderr, e.g. `macro.yaml: read_path.pipelines: expected ...`."""
        parts = [p for p in (self.source, self.where) if p]
        return ": ".join(parts + [self.expected])


class ConfigError(UserError):
    """A macro, technology, sweep or signs YAML that does not validate."""


class TraceError(UserError):
    """A trace file that is missing, truncated, malformed or holds bad numbers."""


class NumericsError(UserError):
    """Input vectors the datapath refuses (NaN or Inf), named by tensor."""
