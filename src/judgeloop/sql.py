"""Quoting for the SQL that `audit` and `diff` build from names and text (DuckDB dialect)."""

from __future__ import annotations


def ident(name: str) -> str:
    """A column, view or table name as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string as a quoted SQL literal."""
    return "'" + text.replace("'", "''") + "'"
