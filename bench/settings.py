"""Settings for the benchmark: the test settings plus the ``bench`` app.

``BGJOBS`` starts from the library defaults (not the tests' short poll
interval); ``BENCH_BGJOBS`` (JSON) overrides keys for an experiment.
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
BGJOBS = json.loads(os.environ.get("BENCH_BGJOBS", "{}"))
