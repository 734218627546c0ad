"""Rows that test handlers write, so a test can count effects across processes."""

from django.db import models


class Effect(models.Model):
    """One handler run that took effect; tests count these per event."""

    event_id = models.CharField(max_length=100, db_index=True)
    handler = models.CharField(max_length=100)
    pid = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)


class Switch(models.Model):
    """A named flag tests flip to make handlers fail or succeed across processes."""

    name = models.CharField(max_length=100, unique=True)
    on = models.BooleanField(default=False)


class Account(models.Model):
    """A model with secret-like fields, which signal hooks must never send."""

    name = models.CharField(max_length=100)
    api_key = models.CharField(max_length=100, blank=True)
    password_hash = models.CharField(max_length=200, blank=True)
    reset_token = models.CharField(max_length=100, blank=True)


class OrderedRun(models.Model):
    """One run of the ordering test handler: which key and number, when, in which process."""

    key = models.CharField(max_length=100, db_index=True)
    n = models.IntegerField()
    pid = models.IntegerField()
    started = models.FloatField()
    finished = models.FloatField()
