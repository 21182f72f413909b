"""SQL quoting: a name or text with quotes stays one identifier or one literal."""

import duckdb

from judgeloop.sql import ident, literal


def test_quotes_are_doubled_and_the_value_round_trips():
    con = duckdb.connect()
    name, text = 'we"ird; DROP TABLE x; --', "it's'; SELECT 1; --"
    con.execute(f"CREATE TABLE t ({ident(name)} VARCHAR)")
    con.execute(f"INSERT INTO t VALUES ({literal(text)})")
    assert con.execute(f"SELECT {ident(name)} FROM t").fetchall() == [(text,)]
    assert [c[0] for c in con.execute("DESCRIBE t").fetchall()] == [name]
