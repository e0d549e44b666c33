"""Key rotation and a lost key across three real node processes on loopback (SPEC.md
§8.5): CHU Cotonou (node 0) with Dr Koffi, a sender; Erasme (node 1) with Dr Anne,
coordinator, and Dr Marie, a reader, Koffi's pair; Dakar (node 2), a node of nobody that
gossips with them. The anchor's key stays offline, in the test's folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.identity import PublicIdentity
from tests.harness.cluster import add_records, node_id
from tests.harness.nodes import tsfnode
from tests.harness.people import REPORT, PairedNet, Person, call
from tests.harness.studies import ct_series
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

QUICK = {
    "transfer": {"poll_interval_ms": 500, "retry_base_ms": 200},
    "cases": {"scan_interval_ms": 300, "stats_interval_ms": 1000},
}
EVALUATION = {
    "relevant": True,
    "useful": True,
    "changed_management": False,
    "teaching_consent": False,
    "comment": "Merci.",
}


@pytest.fixture
def net(tmp_path: Path) -> Iterator[PairedNet]:
    with contextlib.closing(PairedNet(tmp_path, nodes=3, **QUICK)) as network:
        yield network


def hex_of(text: str) -> str:
    return PublicIdentity.from_text(text).key.hex()


def directory_ids(net: PairedNet, i: int, kind: str) -> set[str]:
    """The ids node ``i`` lists in its directory (nodes or members)."""
    found: list[dict[str, Any]] = call(f"{net.cluster.url(i)}/api/v1/directory?kind={kind}", "")[1]
    return {e["id"] for e in found}


def outgoing(net: PairedNet, i: int) -> dict[str, dict[str, Any]]:
    """Node ``i``'s deliveries of bundles sealed there, by bundle id."""
    listed: list[dict[str, Any]] = call(f"{net.cluster.url(i)}/api/v1/transfers", "")[1]
    return {p["bundle_id"]: p for p in listed if p["direction"] == "out"}


def submit_ct(net: PairedNet, folder: Path) -> str:
    folder.mkdir()
    ct_series(folder, 2)
    return net.submit(folder, {"routing": "pair", "target": net.pair})


def report_signer(person: Person, case_id: str) -> str:
    (report,) = [d for d in person.case(case_id)["documents"] if d["kind"] == "report"]
    assert report["impression"] == REPORT["impression"]
    return str(report["signer"])


def restart_with(net: PairedNet, i: int, *argv: str) -> tuple[str, str]:
    """Stop node ``i``, run ``tsfnode ARGV`` on its folder, start it again; the old and
    the new id the command printed."""
    net.cluster.stop_node(i)
    done = tsfnode(*argv)
    assert done.returncode == 0, done.stderr
    old = done.stdout.split("Old id: ")[1].split()[0]
    new = done.stdout.split("New id: ")[1].split()[0]
    return old, new


def test_keys_rotate_and_a_lost_key_is_replaced_while_cases_go_on(
    net: PairedNet, tmp_path: Path
) -> None:
    c, koffi, marie = net.cluster, net.koffi, net.marie

    # 1. A case in flight; Erasme rotates its node key (restarted in place, its data kept).
    first = submit_ct(net, tmp_path / "ct1")
    wait_for("Marie has the first case", lambda: marie.state(first) == "assigned")
    before = set(outgoing(net, 0))
    old1, new1 = restart_with(net, 1, "key", "rotate", c.dirs[1])
    assert node_id(c.dirs[1]) == new1
    c.ids[1] = new1
    c.start_node(1)
    for i in (0, 2):
        wait_for(
            f"node {i} knows Erasme by its new key only",
            lambda i=i: (ids := directory_ids(net, i, "node")) >= {new1} and old1 not in ids,
            timeout=120,
        )
    assert marie.case(first)["state"] == "assigned"  # its images and state kept
    marie.ok(f"/cases/{first}/report", "POST", REPORT)
    wait_for("the first report is back", lambda: koffi.state(first) == "report_delivered")
    # A new case reaches Erasme under its new key.
    second = submit_ct(net, tmp_path / "ct2")
    wait_for("Marie has the second case", lambda: marie.state(second) == "assigned")
    since = [p for b, p in outgoing(net, 0).items() if b not in before]
    assert since  # the first report's receipt, the second case's study and decisions
    assert {p["peer"] for p in since} == {new1}

    # 2. Marie rotates her person key: what she signed before stays hers, what she signs
    #    now is signed by the new key and taken by Cotonou.
    old_marie, new_marie = restart_with(net, 1, "key", "rotate", c.dirs[1], "--person", "marie")
    assert old_marie == marie.id
    c.start_node(1)
    wait_for(
        "Cotonou knows Marie by her new key",
        lambda: new_marie in directory_ids(net, 0, "member"),
        timeout=120,
    )
    assert report_signer(koffi, first) == hex_of(old_marie)
    marie.ok(f"/cases/{second}/report", "POST", REPORT)
    wait_for("the second report is back", lambda: koffi.state(second) == "report_delivered")
    assert report_signer(koffi, second) == hex_of(new_marie)

    # 3. Cotonou's key is stolen while a report is on its way to it: the anchor revokes
    #    it and admits Cotonou again under a new key; Erasme seals the report again.
    third = submit_ct(net, tmp_path / "ct3")
    wait_for("Marie has the third case", lambda: marie.state(third) == "assigned")
    old0, new0 = restart_with(net, 0, "key", "rotate", c.dirs[0], "--lost")
    marie.ok(f"/cases/{third}/report", "POST", REPORT)  # sealed for the stolen key
    readmit = tmp_path / "readmit.tsfd"
    made = tsfnode(
        "readmit", new0, "--replaces", old0, "--revoke", "--network", c.network_file,
        "--key", c.anchor_key, "--out", readmit,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    add_records(c.dirs[0], readmit)
    add_records(c.dirs[2], readmit)  # the anchor hands them to any node: gossip does the rest
    c.ids[0] = new0
    c.start_node(0)
    wait_for(
        "Erasme knows Cotonou by its new key",
        lambda: new0 in directory_ids(net, 1, "node"),
        timeout=120,
    )
    wait_for(
        "the third report, sealed again, is back",
        lambda: koffi.state(third) == "report_delivered",
        timeout=120,
    )
    stopped = [p for p in outgoing(net, 1).values() if p["peer"] == old0]
    assert stopped
    assert all(p["state"] in ("delivered", "failed") for p in stopped)
    resealed = [p for p in stopped if p["state"] == "failed"]
    assert resealed  # the report sealed for the stolen key never left: sealed again
    assert all("replaced" in p["last_error"] for p in resealed)
    koffi.ok(f"/cases/{third}/evaluation", "POST", EVALUATION)
    wait_for("the evaluation reaches Marie", lambda: marie.state(third) == "evaluated")
