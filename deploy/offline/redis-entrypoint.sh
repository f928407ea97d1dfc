#!/bin/sh
# As the official image's entrypoint does: a redis-server started from the command line (no
# config file) accepts connections from other containers.
if [ "$1" = "redis-server" ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
