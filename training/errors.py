"""User-facing errors: what went wrong, where, and how to fix it.

Library code raises `KosovError` for anything the user can fix (a bad recipe value, a malformed data row,
a missing GPU). The CLI prints its message without a traceback and exits with status 2; everything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class KosovError(Exception):
    """An error the user can fix. The message says what, where, and what to do."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        parts = [f"{where}: {what}" if where else what]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__("\n".join(parts))

    def __reduce__(self):  # pickled whole (a worker process's error, a launcher's job result): where and fix kept
        return _rebuild, (type(self), self.what, self.where, self.fix)


def _rebuild(kind: type, what: str, where: str | None, fix: str | None) -> KosovError:
    return kind(what, where=where, fix=fix)


def choice_error(key: str, value: object, allowed: list[str] | tuple[str, ...]) -> KosovError:
    """The standard error for a value outside a fixed set of choices."""
    return KosovError(
        f"{key}={value!r} is not allowed",
        fix=f"use one of: {', '.join(map(str, allowed))}",
    )
