from django.db import models


class PingRecord(models.Model):
    """One row per ping on /ws/ping/db/: the ORM write and read of that endpoint."""

    instance = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    created = models.DateTimeField(auto_now_add=True)
