"""Errors raised by trace loaders: they always name the file, the line, the column and the value."""

from __future__ import annotations


class TraceError(ValueError):
    def __init__(self, path: str, line: int, column: str, value: str, allowed: str) -> None:
        self.path, self.line, self.column, self.value, self.allowed = (
            path,
            line,
            column,
            value,
            allowed,
        )
        super().__init__(f"{path}:{line}: column '{column}': {value!r} is not allowed ({allowed})")
