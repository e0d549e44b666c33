"""The peer API (`/peer/`): what other nodes may ask of this one; signed envelopes and
transfers.
"""
