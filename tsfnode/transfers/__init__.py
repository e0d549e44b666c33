"""Moving sealed bundles: sealing, the outbox, the inbox and relay service, chunk files,
progress.
"""
