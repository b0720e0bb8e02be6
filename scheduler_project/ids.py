"""Primary keys: UUID strings (spec 000 §2: VARCHAR(64) ids), time-ordered.

Version 7 (RFC 9562): the first 48 bits are the creation time in milliseconds, the other 74 random. Rows
are then inserted at the end of the primary key's B-tree, where InnoDB keeps its hot pages, rather than at
random places in it: with random (version 4) keys, a history table written at a thousand rows a second
outgrew the buffer pool and every insert turned into random page reads.
"""

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0x2 << 62


def new_id() -> str:
    return str(uuid7())


def uuid7(now_ms: int | None = None) -> uuid.UUID:
    """A version 7 UUID for the instant ``now_ms`` (milliseconds since the epoch; now by default)."""
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10))
    rand_a, rand_b = random >> 68, random & ((1 << 62) - 1)  # 12 and 62 random bits
    return uuid.UUID(int=(now_ms & ((1 << 48) - 1)) << 80 | _VERSION_7 | rand_a << 64 | _VARIANT_RFC | rand_b)
