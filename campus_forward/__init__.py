"""Store-and-forward to the hub above, shared by both tiers that forward: the edge agent (gateway
-> regional hub) and the regional hub (regional -> central hub).

``outbox`` is the durable SQLite queue that numbers every message (epoch, seq), ``uplink`` drains it
at QoS 1 and deletes a row only on PUBACK, ``packing`` and ``merge`` keep telemetry batches under
their size bounds, ``metrics`` counts all of it.
"""
