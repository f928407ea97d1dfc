#!/bin/sh
# Stand-in for the official postgres image: honours POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB.
set -e
user=${POSTGRES_USER:-postgres}; db=${POSTGRES_DB:-$user}
mkdir -p "$PGDATA" /run/postgresql && chown -R postgres:postgres "$PGDATA" /run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "$POSTGRES_PASSWORD" > /tmp/pwfile && chown postgres /tmp/pwfile
  su postgres -c "initdb -D $PGDATA -U $user --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256" >/dev/null
  rm -f /tmp/pwfile
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  su postgres -c "pg_ctl -D $PGDATA -w -o '-c listen_addresses=' start" >/dev/null
  if [ "$db" != "postgres" ]; then su postgres -c "psql -q -U $user -d postgres -c 'CREATE DATABASE \"$db\"'"; fi
  su postgres -c "pg_ctl -D $PGDATA -w stop" >/dev/null
fi
exec su postgres -c "exec postgres -D $PGDATA"
