"""What a DICOM UID may be (PS3.5 §9.1), the only check a value read from a file or a
URL passes before it may name anything on this node.

A UID is components of digits separated by single dots; a component is "0" or has no
leading zero; at most 64 characters. ``..``, ``/``, an empty component and the like are
not UIDs (the old check, ``[0-9.]{1,64}``, let ``..`` through).
"""

from __future__ import annotations

import re

_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
# UIDs the node makes itself for what it stores: 2.25 and a number (PS3.5 B.2).
_NODE_MADE = re.compile(r"2\.25\.(?:0|[1-9][0-9]*)")
DICOM_ROOT = "1.2.840.10008."


def is_uid(value: str) -> bool:
    """True if ``value`` is a valid DICOM UID (PS3.5 §9.1)."""
    return len(value) <= 64 and _UID.fullmatch(value) is not None


def is_node_made(value: str) -> bool:
    """True if ``value`` has the form of the UIDs the node gives what it stores."""
    return len(value) <= 64 and _NODE_MADE.fullmatch(value) is not None
