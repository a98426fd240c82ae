"""Small stream helpers shared by the readers of the dumpfile package: the chunk size they read
in, and reading an exact number of bytes from a stream that may return fewer.
"""

from __future__ import annotations

from typing import IO

_CHUNK = 1 << 20


def _read_up_to(stream: IO[bytes], size: int) -> bytes:
    parts, wanted = [], size
    while wanted > 0:
        data = stream.read(wanted)
        if not data:
            break
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts)
