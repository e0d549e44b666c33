"""Networks' trust anchors and seed peers, and the offline tools of the people who run a
network: create it, certify reading groups, admit nodes, attest members, revoke.

The holder of an anchor key keeps it offline; every tool here writes signed records to a
file (``.tsfd``, documents one after the other) that is then carried to a node and taken
into its directory (``tsfnode directory add``), from where gossip spreads it.
"""
