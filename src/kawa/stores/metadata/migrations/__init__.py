"""Alembic migrations of the metadata database, applied by `MetadataStore` when it opens.

One file per migration in `versions/`, named `<rev>_<slug>.py` with sequential revision ids
(`0001`, `0002`, ...). To draft the next one from what changed in `tables.py`, compare against a
database at the current head (opening it with `open_metadata` once puts it there):

    from alembic import command
    from kawa.stores.metadata import open_metadata
    from kawa.stores.metadata.migrate import alembic_config
    open_metadata("sqlite:////tmp/draft.sqlite3", Path("/tmp")).close()
    command.revision(alembic_config("sqlite:////tmp/draft.sqlite3"), message="runs",
                     rev_id="0002", autogenerate=True)

then read, trim and `ruff format` the draft. A migration never imports `tables.py`, so it stays a
fixed snapshot of the schema at its revision.
"""
