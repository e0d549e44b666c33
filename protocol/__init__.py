"""The sans-IO core of the tsf network.

Everything that crosses between nodes is defined here as pure, synchronous, deterministic
code: identities, signed envelopes, signed documents, sealed study bundles. Time comes in
as an argument (``now``, integer milliseconds since the Unix epoch) and randomness as an
injectable ``rng`` callable. Nothing in this package reads a clock, opens a socket or
imports an event loop; ``protocol/SPEC.md`` is the normative description.
"""

PROTOCOL_VERSION = 1
