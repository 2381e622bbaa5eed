"""What to copy: the names given, the walk under -r, the link rule, safe reading, keys."""
