"""The link between tiers: a regional hub forwards to the central hub, the central hub serves
the city.

Regional side: ``summaries`` builds what is forwarded from the regional database, ``forwarder``
queues it in the shared ``campus_forward`` outbox and runs the uplink to the central broker.
Central side: ``ingest`` stores what arrives (``store``, tables in ``models``), ``city`` reads the
city-wide views back.
"""
