"""Tables the test jobs write to, to prove how often they ran."""

from django.db import models


class Execution(models.Model):
    """One row per run of a test job; ``token`` unique proves exactly once."""

    token = models.CharField(max_length=100, unique=True)
    job_id = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return self.token


class ChaosRun(models.Model):
    """One row per run of a chaos job; ``key`` repeats if a job runs twice."""

    key = models.IntegerField(db_index=True)
    pid = models.IntegerField()

    def __str__(self) -> str:
        return f"{self.key} in {self.pid}"


class Counter(models.Model):
    """A named counter that atomic chaos jobs increment."""

    name = models.CharField(max_length=50, unique=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
