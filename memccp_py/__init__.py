"""memccp-py: copy files into memcached under chosen keys (a drop-in memccp)."""

__version__ = "0.1.0"
