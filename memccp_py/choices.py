"""Names and defaults the command line accepts (hashes, distributions, protocols), kept
apart so that parsing imports nothing heavy."""

#: memccp --hash names (libmemcached's, lower case), in libhashkit's order.
HASH_NAMES = ("default", "md5", "crc", "fnv1_64", "fnv1a_64", "fnv1_32", "fnv1a_32",
              "hsieh", "murmur", "jenkins", "murmur3")

#: --distribution names.
DISTRIBUTIONS = ("modula", "ketama", "ketama-weighted", "nginx-consistent", "nginx-hash", "all")

#: Seconds a failed server is left alone before it is tried again (--retry-timeout).
DEFAULT_RETRY_TIMEOUT = 2.0

#: Distributions that place keys as nginx does (on the key before --escape=nginx).
NGINX_DISTRIBUTIONS = ("nginx-consistent", "nginx-hash")

#: --protocol names: auto chooses binary, else meta, else text, per server.
PROTOCOLS = ("auto", "binary", "text", "meta")
