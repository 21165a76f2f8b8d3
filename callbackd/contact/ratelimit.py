"""Provider rates: at most so many calls or messages a second per provider account, for every dispatcher that
shares the limiter's storage (memory for the embedded runner; Redis for Celery workers)."""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


def rate_item(per_second: float) -> RateLimitItemPerSecond:
    """`per_second` as a window: 5 a second, or 1 every 2 seconds for 0.5."""
    if per_second >= 1:
        return RateLimitItemPerSecond(int(per_second))
    return RateLimitItemPerSecond(1, max(1, round(1 / per_second)))


class ProviderLimiter:
    """Admits a provider request when its account is under its rate."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def admit(self, key: str, per_second: float) -> bool:
        return self.limiter.hit(rate_item(per_second), key)

    def wait(self, key: str, per_second: float, poll: float = 0.01) -> None:
        """Block until the account may send one more request."""
        while not self.admit(key, per_second):
            time.sleep(poll)
