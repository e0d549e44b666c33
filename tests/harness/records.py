"""Directory records signed in the test process, for a node in process (no CLI)."""

from __future__ import annotations

import os

from bootstrap.network import demo_anchor, load_network
from bootstrap.tools import create_group
from protocol.identity import Identity


def paediatrics_and_hospital(
    coordinator: Identity, now: int
) -> tuple[Identity, Identity, list[bytes]]:
    """The demo network's two groups, signed by its anchor: Pédiatrie (coordinated by
    ``coordinator``, subspeciality paediatrics) and CHU Cotonou (its own key its
    coordinator): their keys and records."""
    network, anchor = load_network("demo"), demo_anchor()
    paediatrics, hospital = Identity.generate(os.urandom), Identity.generate(os.urandom)
    raws = [
        *create_group(
            network, anchor, paediatrics, name="Pédiatrie", kind="subspeciality",
            routing="assign", may_admit=False, coordinators=[coordinator.public],
            subspecialities=["paediatrics"], now=now,
        ),
        *create_group(
            network, anchor, hospital, name="CHU Cotonou", kind="institutional",
            routing="assign", may_admit=False, coordinators=[hospital.public], now=now,
        ),
    ]  # fmt: skip
    return paediatrics, hospital, raws
