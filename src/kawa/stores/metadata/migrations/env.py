"""Alembic's entry point: runs the migrations on the connection kawa hands over, or on a URL for drafts."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from kawa.stores.metadata.tables import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; batch mode makes drafted migrations do that.
        render_as_batch=connection.dialect.name == "sqlite",
        # kawa's SQLite engine emits its own BEGIN, so DDL there is transactional as on PostgreSQL.
        transactional_ddl=True,
        compare_type=True,
    )


def run_offline() -> None:
    """Print the migrations as SQL (`alembic upgrade --sql`)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Apply the migrations on the store's connection, inside the transaction it already opened."""
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    # Drafting a revision by hand: connect to the URL the config names.
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as fresh:
        _configure(fresh)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
