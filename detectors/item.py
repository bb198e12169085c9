"""The unit of work of the engine: an item, one record's (or output's) work for one shard.

An item is a plain tuple ``(ts, rank, event_id, key, payload, origin)``, read through the
names of its positions:

- ``TS``: event time, microseconds;
- ``RANK``: order among items of one time (-1: a timer's own item, which has no event);
- ``EVENT_ID``: id of the source event, by which a key drops re-deliveries;
- ``KEY``: state key, starting with the operator's one-letter prefix; in the detect stage
  the list of the record's state keys that shard holds, in order (one item per record);
- ``PAYLOAD``: what the operator needs (a tuple; a list once decoded); in the detect stage
  the record's packed fields, the same for every key (positions below);
- ``ORIGIN``: wall-clock ms the source record was appended to Kafka (0 offline).

Not a NamedTuple: CPython 3.11 keeps its fast paths (specialised indexing and unpacking,
``itemgetter``, allocation) for exact tuples, and a NamedTuple item cost offline replay
about 12% more instructions per record (measured with callgrind on 20,000 records).
"""

from __future__ import annotations

from typing import Any, Final

# the key is a string, or in the detect stage the list of a record's keys one shard holds
Item = tuple[int, int, str, str | list[str], Any, int]
# Final: the type checker then knows the type of the field each one reads
TS: Final = 0
RANK: Final = 1
EVENT_ID: Final = 2
KEY: Final = 3
PAYLOAD: Final = 4
ORIGIN: Final = 5

# first of a detect item's keys when it remembers its id per key (a former version's item)
PER_KEY: Final = "\x00"
# Packed records, the payload of detect-stage items; the tag comes first.
# api_call: ("c", developer, app, operation, status, source_ip, seller, region)
C_DEV: Final = 1
C_APP: Final = 2
C_OP: Final = 3
C_STATUS: Final = 4
C_IP: Final = 5
C_SELLER: Final = 6
C_REGION: Final = 7
# data_access: ("a", viewer_type, viewer_id, viewer_seller_id, channel)
A_TYPE: Final = 1
A_VIEWER: Final = 2
A_SELLER: Final = 3
A_CHANNEL: Final = 4
# authorization: ("g", roles, expires_at) or ("r",); key_event: ("k", action, developer, app)
