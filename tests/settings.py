"""Settings for the test suite: PostgreSQL from DATABASE_URL by default.

``DATABASE_URL=sqlite:///...`` runs the same suite on SQLite.
"""

import json
import os

import dj_database_url
import django

SECRET_KEY = "tests-only"  # noqa: S105
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_bgjobs",
    "tests",
    "testproject.shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
# Worker subprocesses of the bulk tests keep their connections (CONN_MAX_AGE).
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0"))
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"] + ".test"}
if DATABASES["default"]["ENGINE"].endswith("mysql"):
    # Django 5.2 still defaults to utf8mb3. Claims want READ COMMITTED
    # (Django's default too): no gap locks, rows that fail WHERE are unlocked.
    DATABASES["default"]["OPTIONS"] = {
        "charset": "utf8mb4",
        "isolation_level": "read committed",
    }
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4"}
    # MySQL and MariaDB build the partial indexes as plain ones (models.W037).
    SILENCED_SYSTEM_CHECKS = ["models.W037"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Django 6.1 replaced EMAIL_BACKEND with MAILERS and warns about the old one.
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# A Redis cache for the tests that turn REDIS_CACHE on. Pub/sub channels are
# global to a Redis server: a prefix per test session (inherited by worker
# subprocesses through the environment) keeps parallel runs apart.
os.environ.setdefault("BGJOBS_TEST_REDIS_PREFIX", f"tests{os.getpid()}")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "bgjobs": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "KEY_PREFIX": os.environ["BGJOBS_TEST_REDIS_PREFIX"],
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 5},
    },
    # Nothing listens there: the tests of the fallback when Redis is away.
    "bgjobs_away": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
    },
}
BGJOBS = {"POLL_INTERVAL": 0.05, "BACKOFF_JITTER": False}
# Django's own tasks (tests/tasks.py) run on django-bgjobs; Django 5.2 has no
# django.tasks, and its TASKS setting would only trip bgjobs.E021.
if django.VERSION >= (6, 0):
    TASKS = {
        "default": {
            "BACKEND": "django_bgjobs.backend.BgJobsBackend",
            "QUEUES": ["default", "tasks-other"],
            "OPTIONS": {"attempts": 3, "backoff": "fixed", "backoff_delay": 0.05},
        }
    }
# Worker subprocesses started by tests take per-test settings from here.
BGJOBS.update(json.loads(os.environ.get("BGJOBS_OVERRIDES", "{}")))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_bgjobs": {
            "handlers": ["console"],
            # Worker subprocesses of the log tests set INFO.
            "level": os.environ.get("BGJOBS_LOG_LEVEL", "WARNING"),
        },
        # Django logs a failed task (task_finished) at ERROR, with its
        # traceback: the worker tests of tests/tasks.py read it.
        "django.tasks": {"handlers": ["console"], "level": "WARNING"},
    },
}
# Fast hashing: tests create users with passwords.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
