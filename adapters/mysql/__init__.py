"""SQLAlchemy Core storage for MariaDB/MySQL and SQLite, with Alembic migrations."""
