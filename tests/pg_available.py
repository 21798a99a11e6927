"""`python -m tests.pg_available URL`: exit 0 if PostgreSQL answers at URL (used by the Makefile)."""

import sys

from sqlalchemy import create_engine, text


def main(url: str) -> int:
    try:
        with create_engine(url, connect_args={"connect_timeout": 3}).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means unreachable
        print(f"PostgreSQL: {error.__class__.__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
