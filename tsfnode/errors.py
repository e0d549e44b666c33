"""Errors meant for the person running the node."""


class NodeError(Exception):
    """A problem the operator can fix: the message is one line that says what is wrong
    and what to do. The CLI prints it and exits with status 2; nothing is overwritten."""

    exit_status = 2
