"""The federation core shared by the hub and the nodes.

Signing and keys, clocks, the record store, the sync protocol (server and
client side) and scheduling. `hub` and `node` build on this package and never
import each other.
"""
