"""End-to-end tests of the installed package (/usr/bin/memccp from the .deb) with nginx."""
