"""The foreign backend's data: sites, pens, sensors and readings, keyed by UUIDs (nothing
like barnstorm's farm-01 and room ids)."""

from __future__ import annotations

import uuid

from django.db import models


class Site(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    title = models.CharField(max_length=80)

    class Meta:
        app_label = "foreign"


class Pen(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    site = models.ForeignKey(Site, related_name="pens", on_delete=models.CASCADE)
    label = models.CharField(max_length=40)

    class Meta:
        app_label = "foreign"


class Sensor(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    pen = models.ForeignKey(Pen, related_name="sensors", on_delete=models.CASCADE)
    kind = models.CharField(max_length=20)

    class Meta:
        app_label = "foreign"


class Reading(models.Model):
    sensor = models.ForeignKey(Sensor, related_name="readings", on_delete=models.CASCADE)
    at = models.FloatField()
    value = models.FloatField()

    class Meta:
        app_label = "foreign"


class Upload(models.Model):
    """What devices posted, as it came."""

    received = models.FloatField()
    body = models.TextField()

    class Meta:
        app_label = "foreign"


class SignIn(models.Model):
    """A login that succeeded: who, and when."""

    user = models.CharField(max_length=40)
    at = models.FloatField()

    class Meta:
        app_label = "foreign"
