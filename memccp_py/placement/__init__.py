"""Where each key goes: server lists, libmemcached's and nginx's distributions and hashes."""
