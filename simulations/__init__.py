"""Simulations: the engines of protocol/ driven in virtual time over a modelled network.

The same code as the node, not a re-implementation: the engines report their next
deadline and are fed messages; this package only decides when and whether messages
arrive. Grows into the operators' scenario runner (issue 10).
"""
