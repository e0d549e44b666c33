"""tsfnode: one node of the tsf teleradiology network (the I/O shell around protocol/)."""

__version__ = "0.1.0"
