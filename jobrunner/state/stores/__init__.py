"""Where the recorded state is kept: the storages, each behind one interface (`base.Storage`).

`base` (the interface, for every layer above), `files` (a state directory: the embedded
default), and for several runners on PostgreSQL: `postgres` (the records), `leases` (who owns
each job, fencing its writes), `schema` (the tables, versioned), `database` (the one
connection an opened state uses for all of them). Only these four import psycopg, and only
when a state database is opened. It imports nothing of the state layer above it (the
records, the layout, the ownership model): a contract in pyproject.toml says so.
"""
