"""Cases between nodes: the case service, who may see a case, pairs, figures, teaching, the
audit log.
"""
