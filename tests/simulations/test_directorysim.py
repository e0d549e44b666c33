"""What a change of the directory costs in the simulator (simulations/directorysim.py):
the node's own engines, by ranges and by the full digest of the engine before."""

from __future__ import annotations

from protocol.gossip import GossipConfig
from simulations.directorysim import change_cost


def test_a_change_costs_each_node_less_by_ranges_than_by_the_full_digest() -> None:
    ranges = change_cost(300, config=GossipConfig(), seed=3)
    digest = change_cost(300, config=GossipConfig(ranges=False), seed=3)
    assert set(ranges.messages) == {"gossip_syn", "gossip_ranges"}
    assert set(digest.messages) == {"gossip_syn", "gossip_digest", "gossip_records"}
    assert ranges.bytes_per_node["median"] < digest.bytes_per_node["median"] / 2
    assert ranges.bytes_per_node["max"] < digest.bytes_per_node["max"] / 4
    # in step, both cost the same: one syn per peer and round
    assert ranges.steady_bytes_per_node_s == digest.steady_bytes_per_node_s


def test_the_same_seed_gives_the_same_cost() -> None:
    first = change_cost(50, seed=5)
    again = change_cost(50, seed=5)
    assert first == again
