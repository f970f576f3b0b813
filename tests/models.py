"""Tables the test jobs write to, to prove how often they ran."""

from django.db import models


class Execution(models.Model):
    """One row per run of a test job; ``token`` unique proves exactly once."""

    token = models.CharField(max_length=100, unique=True)
    job_id = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return self.token
