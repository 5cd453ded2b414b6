"""Every error body carries `message`, the text a person reads, in the user's language (issue 13):
zh-CN by default, English on request; `reason` stays the stable English detail for API clients."""

from __future__ import annotations

import re

from support.server import expect_error

_HAN = re.compile(r"[\u4e00-\u9fff]")


def test_error_message_follows_the_language(login):
    dispatcher = login("dispatcher")
    body = expect_error(dispatcher.post("/api/v1/dispatch/incidents", json={"channel": "119", "type": "theft"}),
                        400, "channel")
    assert "channel" in body["reason"] and not _HAN.search(body["reason"])
    assert _HAN.search(body["message"]), body
    body = expect_error(dispatcher.post("/api/v1/dispatch/incidents?lang=en",
                                        json={"channel": "119", "type": "theft"}), 400, "channel")
    assert body["message"] and not _HAN.search(body["message"]), body


def test_http_errors_carry_a_message_too(login):
    dispatcher = login("dispatcher")
    resp = dispatcher.get("/api/v1/no/such/route")
    assert resp.status_code == 404
    assert _HAN.search(resp.json()["message"])
