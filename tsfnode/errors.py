"""Errors meant for the person running the node."""


class NodeError(Exception):
    """A problem the operator can fix: the message is one line that says what is wrong
    and what to do. The CLI prints it and exits with status 2; nothing is overwritten."""

    exit_status = 2


class CaseError(NodeError):
    """A request about a case that cannot be done; ``status`` is the HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
