"""Settings for the benchmark: the test settings plus the ``bench`` app.

``BGJOBS`` starts from the library defaults (not the tests' short poll
interval); ``BENCH_BGJOBS`` (JSON) overrides keys for an experiment.
The ``bench`` cache is the django-redis cache of the ``postgresql+redis``
vendor (``BGJOBS["REDIS_CACHE"] = "bench"``, set by ``bench/run.py``): a
Redis database of its own, and a key prefix per bench database, which also
names its pub/sub channels.
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import CACHES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
CACHES = {
    **CACHES,
    "bench": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("BENCH_CACHE_REDIS", "redis://127.0.0.1:6379/14"),
        "KEY_PREFIX": os.environ.get("BENCH_DB", "bench"),
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 5},
    },
}
BGJOBS = json.loads(os.environ.get("BENCH_BGJOBS", "{}"))
