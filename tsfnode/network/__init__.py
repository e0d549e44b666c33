"""The node among its peers: the directory, gossip and liveness, LAN discovery, nearest nodes."""
