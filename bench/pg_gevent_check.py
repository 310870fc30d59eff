"""Does psycopg 3 cooperate with gevent? Ten greenlets each run ``pg_sleep(0.5)``.

    python bench/pg_gevent_check.py [postgresql://postgres@127.0.0.1:5432/test]

Cooperative: about 0.5 s in total; blocking: about 5 s. Measured here with psycopg
3.3.9 (binary): 0.59 s raw, 0.55 s through SQLAlchemy: it cooperates (psycopg 3
detects gevent's monkey-patching by itself since 3.1.14; psycogreen is for psycopg2).
"""

from gevent import monkey

monkey.patch_all()
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

URL = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/test"


def raw() -> None:
    with psycopg.connect(URL) as conn:
        conn.execute("SELECT pg_sleep(0.5)")


engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=10)


def orm() -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.5)"))


for name, fn in (("psycopg", raw), ("sqlalchemy+psycopg", orm)):
    start = time.monotonic()
    gevent.joinall([gevent.spawn(fn) for _ in range(10)])
    print(
        f"{name}: 10 x pg_sleep(0.5) in {time.monotonic() - start:.2f} s "
        f"(cooperative ~0.5 s, blocking ~5 s); psycopg {psycopg.__version__} "
        f"({psycopg.pq.__impl__})"
    )
