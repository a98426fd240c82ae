"""The cluster cache: initialized and seeded clusters, kept so that the next start skips initdb
and the restore.

An entry is keyed by a hash of everything that determines the initial state: the image's ID, the
version, initdb's locale and encoding, `durable`, the user and database, roles, extensions,
schemas, seed options, and the bytes of every seed file. Any change is a miss; a stale entry is
never served. No secret is shared through an entry: every environment sets its own password
before it accepts a connection over TCP, and an entry holds neither the password nor the
certificates and key of the environment it was built from. On Docker an entry is a committed
image (`envctl-cache:<key>`), which starts as fast as the image it came from, whatever the
seed's size. On the native runtime it is a copy of the data folder under ENVCTL_CACHE_DIR
(default ~/.cache/envctl), taken while the server is frozen; a start copies it back instead of
running initdb.
"""
