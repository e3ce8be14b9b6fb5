"""Councils and open-data agreements for the API seeds: the API reads through tenancy."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg


def register_and_open(url: str, councils: Iterable[str], *, open_data: bool = True) -> None:
    """Register ``councils`` (their roles follow) and, with ``open_data``, share all of each
    one's data with the public at raw resolution (the seeds hold no personal_data devices)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for council in councils:
            conn.execute(
                "INSERT INTO councils (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (council, council.title()),
            )
            if open_data:
                conn.execute(
                    "INSERT INTO agreements (provider, recipient, resolution, purpose,"
                    " legal_basis, legal_basis_text, starts_at, min_contributors)"
                    " VALUES (%s, 'public', 'raw', 'open data', 'not_personal_data',"
                    " 'not personal data', now() - interval '10 years', 1)",
                    (council,),
                )
