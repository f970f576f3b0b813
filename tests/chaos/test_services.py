"""The service faults of ``django_bgjobs.testing``: Redis stopped and
started again; PostgreSQL restarted in the middle of a run (acceptance 4 of
issue 3)."""

import pytest
import redis

from django_bgjobs.testing import redis_answers

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def test_stop_redis_and_start_redis_take_redis_away_and_back(bgjobs_faults):
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    with client:
        assert client.ping()
        try:
            bgjobs_faults.stop_redis()
            assert not redis_answers()
            with pytest.raises(redis.ConnectionError, match="6379"):
                client.ping()
        finally:
            # Redis must run again even if an assertion above failed.
            bgjobs_faults.start_redis()
        assert redis_answers()
        assert client.ping()
