"""Which server log lines a failed suite's report shows."""

from __future__ import annotations

from provisioner.postgres.server_log import log_excerpt


def test_connection_failures_above_the_tail_come_first_and_are_not_repeated() -> None:
    lines = [
        'FATAL:  pg_hba.conf rejects connection for host "172.17.0.1", SSL encryption',
        "LOG:  database system is ready to accept connections",
        'FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "u", database "d", no encryption',
        'FATAL:  password authentication failed for user "u"',
        'DETAIL:  Connection matched pg_hba.conf line 3: "hostssl all all all scram-sha-256"',
        *(f"ERROR:  expected error {i}" for i in range(30)),
        'FATAL:  password authentication failed for user "late"',
    ]
    excerpt = log_excerpt("\n".join(lines), tail=20)
    assert excerpt.failures == tuple(lines[2:5])
    assert excerpt.tail == tuple(lines[-20:])
    assert excerpt.more_failures == 0


def test_many_failures_show_the_first_and_count_the_rest() -> None:
    lines = [f'FATAL:  password authentication failed for user "u{i}"' for i in range(50)]
    excerpt = log_excerpt("\n".join(lines + ["LOG:  x"] * 20), shown_failures=5)
    assert excerpt.failures == tuple(lines[:5])
    assert excerpt.more_failures == 45


def test_a_short_log_is_all_tail() -> None:
    excerpt = log_excerpt("FATAL:  x\nLOG:  y\n")
    assert excerpt.failures == ()
    assert excerpt.tail == ("FATAL:  x", "LOG:  y")
