"""Errors meant for the person running the node."""

from __future__ import annotations

from collections.abc import Mapping


class NodeError(Exception):
    """A problem the operator can fix: the message is one line that says what is wrong
    and what to do. The CLI prints it and exits with status 2; nothing is overwritten.

    ``key`` (with ``values`` for its ``{name}`` fields), when given, names the catalogue
    text a web page shows instead of the message, in the page's language."""

    exit_status = 2

    def __init__(
        self,
        reason: str = "",
        *,
        key: str | None = None,
        values: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(reason)
        self.key = key
        self.values = dict(values or {})


class CaseError(NodeError):
    """A request about a case that cannot be done; ``status`` is the HTTP status."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        key: str | None = None,
        values: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(reason, key=key, values=values)
        self.status = status
