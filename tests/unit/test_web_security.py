"""The consumer lookup's rate limit and the screens' content security policy."""

from __future__ import annotations

from cloud.web.security import SlidingWindowLimit, content_security_policy


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_refuses_beyond_the_window_count_and_recovers() -> None:
    clock = _Clock()
    limit = SlidingWindowLimit(3, 60.0, clock=clock)
    assert [limit.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("10.0.0.2"), "another client has its own budget"
    clock.now += 59.0
    assert not limit.allow("10.0.0.1")
    clock.now += 1.5
    assert limit.allow("10.0.0.1")


def test_limit_memory_is_bounded() -> None:
    clock = _Clock()
    limit = SlidingWindowLimit(1, 60.0, max_keys=10, clock=clock)
    for n in range(100):
        assert limit.allow(f"client-{n}")
    assert len(limit._events) <= 10


def test_policy_allows_only_own_scripts() -> None:
    csp = content_security_policy()
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert "frame-ancestors 'none'" in csp
    razorpay = content_security_policy("https://checkout.razorpay.com", "https://api.razorpay.com")
    assert "script-src 'self' https://checkout.razorpay.com;" in razorpay
