"""The demo database fixture gives a loaded county that the service serves."""


def test_demo_database_has_the_county(demo_http, demo_conn):
    assert demo_conn.execute("SELECT count(*) AS n FROM county").fetchone()["n"] == 1
    fc = demo_http.get("/api/v1/towns").json()
    assert fc["numberMatched"] == 16
    assert {f["properties"]["name"] for f in fc["features"]} >= {"魏桥镇", "青阳镇", "长山镇", "好生街道", "韩店镇"}
