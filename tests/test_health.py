"""GET /healthz: the database, and the rate limiter's shared storage (Redis) reported apart: a
limiter counting in memory because Redis does not answer is "degraded", not a failure."""

from __future__ import annotations

from .test_security_signin import REDIS_URL, UNREACHABLE_REDIS


def test_healthz_reports_database_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["database"] == "ok"
    assert response.json["limiter"] == "off"  # the test suite switches rate limits off


def test_healthz_reports_the_limiter_ok_on_redis(other_app):
    other = other_app(RATE_LIMITS_ENABLED=True, RATELIMIT_STORAGE_URI=REDIS_URL)
    response = other.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "limiter": "ok",
                             "dialect": response.json["dialect"]}


def test_healthz_reports_the_limiter_ok_in_memory(other_app):
    response = other_app(RATE_LIMITS_ENABLED=True).test_client().get("/healthz")
    assert response.status_code == 200 and response.json["limiter"] == "ok"


def test_healthz_reports_the_limiter_degraded_when_redis_is_unreachable(other_app):
    other = other_app(RATE_LIMITS_ENABLED=True, RATELIMIT_STORAGE_URI=UNREACHABLE_REDIS)
    response = other.test_client().get("/healthz")
    assert response.status_code == 200  # the site works: sign-in counts in memory meanwhile
    assert response.json["status"] == "ok" and response.json["database"] == "ok"
    assert response.json["limiter"] == "degraded"
