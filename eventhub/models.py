"""eventhub's data: event types and routes (configured by operators), events and
deliveries (written by emit, updated by workers).

The database is the truth about events and deliveries; Consul is the truth about
which consumers are alive.
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.urls import reverse

from eventhub.destinations import InvalidTarget, check_target
from eventhub.destinations import secrets as webhook_secrets
from eventhub.events import (
    KeyTemplateError,
    PatternError,
    SchemaError,
    SourcePatternError,
    TransformError,
    check_key_template,
    check_patterns,
    check_schema,
    check_transform,
    envelope_of,
    validate_pattern,
)
from eventhub.tracing import trace_id_of

EVENT_TYPE_NAME = RegexValidator(
    r"^[a-z0-9_]+(\.[a-z0-9_]+)+$",
    "Use a dotted lower-case name such as order.paid (letters, digits, underscores; at least one dot).",
)
QUEUE_NAME = RegexValidator(
    r"^[a-zA-Z_][a-zA-Z0-9._-]*$",
    "A queue name starts with a letter or underscore and holds letters, digits, '.', '_' or '-'.",
)


def new_webhook_secret() -> str:
    """A fresh signing secret (kept for migration 0001, which names it as a default)."""
    return webhook_secrets.new_secret()


class EventType(models.Model):
    """A kind of event, such as ``order.paid``, with an optional JSON Schema for its data."""

    name = models.CharField(max_length=200, unique=True, validators=[EVENT_TYPE_NAME])
    description = models.TextField(blank=True)
    schema = models.JSONField(
        null=True, blank=True, help_text="Optional JSON Schema that every event's data must satisfy."
    )
    active = models.BooleanField(default=True, help_text="Inactive types refuse new events.")
    # Issue 16: how long this type's finished deliveries are kept (docs/retention.md); empty: the
    # global EVENTHUB["RETENTION_SUCCEEDED_DAYS"] / ["RETENTION_DEAD_DAYS"].
    retention_succeeded_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Days a succeeded delivery (and its attempts) is kept after it finished. "
        "Empty: the global setting.",
    )
    retention_dead_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Days a dead delivery (and its attempts) is kept after it died. Empty: the global setting.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            check_schema(self.schema)
        except SchemaError as exc:
            raise ValidationError({"schema": str(exc)}) from exc


class Route(models.Model):
    """Where events of one type go: a filter, a destination and a retry policy."""

    class Kind(models.TextChoices):
        HANDLER = "handler", "Python handler"
        WEBHOOK = "webhook", "HTTP webhook"
        AMQP = "amqp", "AMQP exchange"

    name = models.CharField(max_length=200, unique=True)
    event_type = models.ForeignKey(EventType, on_delete=models.PROTECT, related_name="routes")
    filter = models.JSONField(
        default=dict,
        blank=True,
        help_text="EventBridge-style pattern over the envelope, e.g. "
        '{"data": {"amount": [{"numeric": [">", 100]}]}}. Empty matches every event.',
    )
    destination_kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.HANDLER)
    target = models.CharField(
        max_length=500,
        help_text="Handler name, webhook URL (https://... or consul://service/path), or exchange name.",
    )
    # The webhook signing secret, only ever stored encrypted (eventhub.destinations.secrets); read
    # and set it through ``secret``. After a rotation the previous one signs too, until it expires.
    secret_sealed = models.TextField(default=webhook_secrets.sealed_new_secret, editable=False)
    previous_secret_sealed = models.TextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    queue = models.CharField(
        max_length=100,
        default="eventhub",
        validators=[QUEUE_NAME],
        help_text="The consumer group: the RabbitMQ queue that workers for this route consume.",
    )
    enabled = models.BooleanField(default=True)
    max_attempts = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    min_backoff_ms = models.PositiveIntegerField(default=1_000, validators=[MinValueValidator(1)])
    max_backoff_ms = models.PositiveIntegerField(default=300_000, validators=[MinValueValidator(1)])
    time_limit_ms = models.PositiveIntegerField(
        default=60_000, validators=[MinValueValidator(1)], help_text="Longest one attempt may run."
    )
    # Issue 19: ordering per key and transforms (docs/routes.md).
    ordering_key = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Deliveries with the same key run one at a time, in emit order: a template over the "
        "envelope such as {subject} or order/{data.order_id}. Empty: no ordering.",
    )
    transform = models.JSONField(
        default=dict,
        blank=True,
        help_text='What a webhook or AMQP route sends: {"body": "envelope" or "data", '
        '"fields": {"new name": "path"}, "headers": {"X-Name": "value"}} (headers: webhooks only). '
        "Empty: the envelope as it is.",
    )
    transform_version = models.PositiveIntegerField(
        default=0, editable=False, help_text="Goes up by one each time the transform is changed."
    )
    # Issue 18: the circuit breaker and the release of held deliveries (docs/endpoint-health.md).
    breaker_failures = models.PositiveIntegerField(
        default=5,
        help_text="Open the circuit after this many failed attempts in a row (0: never for this reason).",
    )
    breaker_failure_percent = models.PositiveSmallIntegerField(
        default=50,
        validators=[MaxValueValidator(100)],
        help_text="... or when more than this share of the attempts in a window failed (0: never).",
    )
    breaker_min_attempts = models.PositiveIntegerField(
        default=20,
        validators=[MinValueValidator(1)],
        help_text="The failure share counts only once a window holds at least this many attempts.",
    )
    breaker_window_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)], help_text="The window of the failure share."
    )
    probe_interval_seconds = models.FloatField(
        default=30.0,
        validators=[MinValueValidator(0.1)],
        help_text="While the circuit is open, one held delivery is tried this often (half-open).",
    )
    release_per_second = models.FloatField(
        default=10.0,
        validators=[MinValueValidator(0.1)],
        help_text="Held deliveries are sent again at most this many per second, once the route is "
        "closed or resumed.",
    )
    # Issue 18: rate and concurrency limits (docs/route-limits.md); blank is unlimited.
    rate_limit = models.FloatField(
        null=True,
        blank=True,
        validators=[
            MinValueValidator(
                0.01, "A rate limit is a positive number of deliveries per second (0.01 or more)."
            ),
            MaxValueValidator(100_000, "A rate limit above 100,000 deliveries per second limits nothing."),
        ],
        verbose_name="deliveries per second",
        help_text="At most this many deliveries start per second, over every worker (bursts up to one "
        "second's worth). Blank: unlimited.",
    )
    max_in_flight = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[
            MinValueValidator(1, "At least one delivery must be allowed in flight (blank: unlimited).")
        ],
        verbose_name="at most in flight",
        help_text="At most this many deliveries run at once, over every worker. Blank: unlimited (each "
        "worker process still keeps a share of its threads for other routes).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["event_type", "enabled"], name="route_type_enabled")]
        permissions = [
            ("rotate_route_secret", "Can rotate webhook signing secrets (and see the new one once)"),
            ("pause_route", "Can pause and resume routes"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """Save; a changed transform gets the next version number and is kept in RouteTransform."""
        spec = self.transform or {}
        with transaction.atomic():
            saved = None
            if self.pk is not None:
                saved = Route.objects.filter(pk=self.pk).values_list("transform", "transform_version").first()
            previous_spec, previous_version = saved if saved else ({}, 0)
            changed = (previous_spec or {}) != spec
            if changed:
                self.transform_version = previous_version + 1
                if kwargs.get("update_fields") is not None:
                    kwargs["update_fields"] = {*kwargs["update_fields"], "transform_version"}
            super().save(*args, **kwargs)
            if changed:
                RouteTransform.objects.create(route=self, version=self.transform_version, spec=spec)

    @property
    def secret(self) -> str:
        """The current signing secret, decrypted (kept decrypted on this instance once read)."""
        cached = self.__dict__.get("_secret_plain")
        if cached is None or cached[0] != self.secret_sealed:
            cached = (self.secret_sealed, webhook_secrets.unseal(self.secret_sealed))
            self.__dict__["_secret_plain"] = cached
        return cached[1]

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_sealed = webhook_secrets.seal(value)

    def clean(self) -> None:
        errors = {}
        try:
            validate_pattern(self.filter)
        except PatternError as exc:
            errors["filter"] = str(exc)
        try:
            check_target(self.destination_kind, self.target)
        except InvalidTarget as exc:
            errors["target"] = str(exc)
        if self.min_backoff_ms and self.max_backoff_ms and self.min_backoff_ms > self.max_backoff_ms:
            errors["max_backoff_ms"] = "The maximum backoff must not be below the minimum."
        errors.update(self._richer_errors())
        if errors:
            raise ValidationError(errors)

    def _richer_errors(self) -> dict[str, str]:
        """Errors in the ordering key and the transform (issue 19)."""
        errors = {}
        try:
            check_key_template(self.ordering_key)
        except KeyTemplateError as exc:
            errors["ordering_key"] = f"Invalid ordering key: {exc}."
        try:
            spec = check_transform(self.transform)
        except TransformError as exc:
            errors["transform"] = f"Invalid transform: {exc}."
            return errors
        if spec and self.destination_kind == self.Kind.HANDLER:
            errors["transform"] = (
                "Handlers always receive the envelope; transforms apply to webhook and AMQP routes."
            )
        elif spec.get("headers") and self.destination_kind != self.Kind.WEBHOOK:
            errors["transform"] = "Static headers apply to webhook routes only."
        return errors


class RouteGate(models.Model):
    """The shared state of a limited route's rate and concurrency limits (eventhub.worker.limits).

    One row per route with limits, changed by one conditional UPDATE per admission, so
    that every worker process and host sees the same figures. Kept off the Route row:
    the route copy's digest covers every Route column and would reload at each change.
    """

    route = models.OneToOneField(Route, on_delete=models.CASCADE, primary_key=True, related_name="gate")
    # The rate limit's next free start, in seconds since the epoch on the database's clock (a GCRA
    # "theoretical arrival time"): a start is allowed while it is at most one second's burst ahead.
    next_at = models.FloatField(default=0.0)
    # Deliveries in flight: lease token -> expiry (epoch seconds). A lease a killed worker never
    # gave back expires after the route's time limit and a grace period.
    leases = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"gate of route {self.route_id}"


class RouteTransform(models.Model):
    """One version of a route's transform, kept so each delivery is sent with the version it was made with."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="transform_versions")
    version = models.PositiveIntegerField()
    spec = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["route", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["route", "version"], name="routetransform_route_version")
        ]

    def __str__(self) -> str:
        return f"{self.route_id} transform v{self.version}"


class Event(models.Model):
    """One emitted event: the CloudEvents envelope as written. Never changed after insert."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.ForeignKey(EventType, on_delete=models.PROTECT, related_name="events")
    type = models.CharField(max_length=200)
    source = models.CharField(max_length=500)
    # The producer's own CloudEvents id when it is not ours (HTTP ingest); unique per source.
    external_id = models.CharField(max_length=200, null=True, blank=True)
    subject = models.CharField(max_length=500, blank=True, default="")
    time = models.DateTimeField()
    specversion = models.CharField(max_length=10, default="1.0")
    datacontenttype = models.CharField(max_length=100, default="application/json")
    # CloudEvents' optional dataschema (kept and passed on, never fetched) and extension attributes.
    dataschema = models.CharField(max_length=500, blank=True, default="")
    extensions = models.JSONField(null=True, blank=True)
    data = models.JSONField(null=True, blank=True)
    # W3C trace context of where the event was emitted (CloudEvents distributed-tracing extension).
    traceparent = models.CharField(max_length=55, blank=True, default="")
    tracestate = models.CharField(max_length=512, blank=True, default="")
    # The API token an ingested event came with (None for events emitted in this project).
    api_token = models.ForeignKey(
        "ApiToken", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-time"]
        indexes = [
            models.Index(fields=["-time"], name="event_time"),
            models.Index(fields=["subject"], name="event_subject"),
            models.Index(fields=["type", "-time"], name="event_type_time"),
            # Dashboard search by the producer's own event id.
            models.Index(fields=["external_id"], name="event_external_id"),
            # Which events a token sent (and the check before a token is deleted): ingested ones only.
            models.Index(
                fields=["api_token"], condition=models.Q(api_token__isnull=False), name="event_api_token"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="event_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("Events are immutable once written.")
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("eventhub:event", args=[self.pk])

    @property
    def envelope(self) -> dict:
        """The CloudEvents 1.0 envelope handed to consumers."""
        return envelope_of(self)

    @property
    def trace_id(self) -> str:
        """The W3C trace id of where the event was emitted, or ""."""
        return trace_id_of(self.traceparent)


class Delivery(models.Model):
    """One event through one route, with its outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending (not yet confirmed by the broker)"
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        RETRYING = "retrying", "retrying"
        DEAD = "dead", "dead"
        WAITING = "waiting", "waiting for an earlier delivery with the same ordering key"
        HELD = "held", "held: its route is open (circuit breaker) or paused"

    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    # No index of its own: the (route, ...) indexes below start with it, and every extra index
    # is written again on each of a delivery's status changes.
    route = models.ForeignKey(Route, on_delete=models.PROTECT, related_name="deliveries", db_index=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    # ``attempts`` is the lifetime total (Attempt.number follows it); a replay starts a fresh
    # round of the retry policy, which counts only the attempts made after this mark. A failed
    # circuit probe (issue 18) moves the mark up by one: it is not counted against the delivery.
    attempts_before_replay = models.PositiveIntegerField(
        default=0,
        help_text="Attempts the retry policy does not count: those before the last replay, and failed "
        "circuit probes.",
    )
    # Issue 19: the route's ordering key rendered for this event, and its place in that key's line.
    ordering_key = models.CharField(max_length=200, null=True, blank=True)
    ordering_seq = models.BigIntegerField(null=True, blank=True)
    transform_version = models.PositiveIntegerField(
        default=0, help_text="The version of the route's transform this delivery is sent with (0: none)."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        permissions = [("replay_delivery", "Can replay deliveries and events")]
        # Every status change of a delivery (queued, running, its outcome) writes a new entry in
        # each index whose condition holds: the fewer, the cheaper each delivery (issue 17).
        # (route, status, -created_at) stays: without it, a route and status filter for a status
        # that route rarely has walks the route's rows, or every row of that status.
        indexes = [
            models.Index(fields=["status", "-created_at"], name="delivery_status_created"),
            models.Index(fields=["route", "-created_at"], name="delivery_route_created"),
            models.Index(fields=["route", "status", "-created_at"], name="delivery_route_status"),
            # The dashboard's "failing and dead" list: small, and read on every refresh.
            models.Index(
                fields=["-created_at"],
                condition=models.Q(status__in=["dead", "retrying"]),
                name="delivery_problems",
            ),
            # Finished since the last stats refresh: which per-minute figures to recompute. Only
            # finished rows: unfinished ones (inserted, queued, claimed) write no entry here.
            models.Index(
                fields=["finished_at"],
                condition=models.Q(finished_at__isnull=False),
                name="delivery_finished",
            ),
            # The head of an ordering key's line: only unfinished ordered deliveries are indexed.
            models.Index(
                fields=["route", "ordering_key", "ordering_seq"],
                condition=models.Q(ordering_key__isnull=False) & ~models.Q(status__in=["succeeded", "dead"]),
                name="delivery_ordering_head",
            ),
            # Held deliveries, oldest first per route: what the releaser sends and the dashboard counts.
            models.Index(
                fields=["route", "created_at", "id"], condition=models.Q(status="held"), name="delivery_held"
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of {self.event_id} via {self.route_id}: {self.status}"


class RouteHealth(models.Model):
    """A route's endpoint health, shared by every worker process and host (eventhub.health).

    Made when the route first fails or is paused; a route without one is closed and not paused.
    Updated with row locks and conditional updates only, so every process sees one state.
    """

    class State(models.TextChoices):
        CLOSED = "closed", "closed (delivering)"
        OPEN = "open", "open (holding deliveries)"
        HALF_OPEN = "half_open", "half-open (trying one delivery)"

    route = models.OneToOneField(Route, on_delete=models.CASCADE, related_name="health")
    state = models.CharField(max_length=20, choices=State.choices, default=State.CLOSED)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True, default="")
    reason = models.TextField(blank=True, default="", help_text="Why the state last changed.")
    changed_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # The failure share's window: attempts and failures counted since window_started_at.
    window_started_at = models.DateTimeField(null=True, blank=True)
    window_attempts = models.PositiveIntegerField(default=0)
    window_failures = models.PositiveIntegerField(default=0)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    probe_delivery_id = models.BigIntegerField(null=True, blank=True)
    # The releaser's pace (shared by every host): the earliest time of the next release.
    release_next_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "route health"
        verbose_name_plural = "route health"

    def __str__(self) -> str:
        return f"{self.route_id}: {self.display_state}"

    @property
    def display_state(self) -> str:
        """closed, open, half_open or paused (a pause outranks the circuit)."""
        return "paused" if self.paused else self.state

    @property
    def holds(self) -> bool:
        """Whether new deliveries of the route are held (open, half-open or paused)."""
        return self.paused or self.state != self.State.CLOSED


class RouteHealthChange(models.Model):
    """One change of a route's health: the circuit opening or closing, a pause or resume, and why."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="health_changes")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    previous = models.CharField(max_length=20)
    state = models.CharField(max_length=20, help_text="closed, open, half_open or paused, after the change.")
    reason = models.TextField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept when the user account is later deleted; empty for changes made by eventhub itself.
    username = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["route", "-created_at"], name="healthchange_route_created")]

    def __str__(self) -> str:
        return f"{self.route_id}: {self.previous} -> {self.state} ({self.reason[:60]})"


class OrderingKey(models.Model):
    """The last sequence number given out in one ordering key of one route (eventhub.outbox.ordering).

    Emit takes this row's lock to number its deliveries, so numbers follow the order
    in which emitting transactions commit.
    """

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["route", "key"], name="orderingkey_route_key")]
        indexes = [models.Index(fields=["updated_at"], name="orderingkey_updated")]

    def __str__(self) -> str:
        return f"{self.route_id}:{self.key} @{self.last_seq}"


class TrialDelivery(models.Model):
    """A test event an operator sent through a route from its admin page; never counted in the figures."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="trials")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    envelope = models.JSONField(help_text="The sample envelope sent (before the route's transform).")
    transform_version = models.PositiveIntegerField(default=0)
    succeeded = models.BooleanField(default=False)
    duration_ms = models.FloatField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "test delivery"
        verbose_name_plural = "test deliveries"

    def __str__(self) -> str:
        return f"test of {self.route_id} by {self.username or '?'}: {'ok' if self.succeeded else 'failed'}"

    @property
    def event_id(self) -> str:
        """The sample envelope's id: with the row's id, the test's ``webhook-id`` (as a delivery's)."""
        return str(self.envelope.get("id", ""))


class Attempt(models.Model):
    """One run of a delivery: the history an operator reads when a delivery fails."""

    # Indexed by (delivery, number) below, which serves every lookup by delivery.
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_ms = models.FloatField()
    worker = models.CharField(max_length=200, blank=True, default="")
    succeeded = models.BooleanField()
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [models.Index(fields=["delivery", "number"], name="attempt_delivery_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"


class Replay(models.Model):
    """One replay an operator asked for: who, when, what, and how many deliveries it sent."""

    class Kind(models.TextChoices):
        DELIVERIES = "deliveries", "chosen deliveries"
        EVENT = "event", "an event through today's routes"
        BULK = "bulk", "bulk by route, status and time"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept when the user account is later deleted: the record must still say who.
    username = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="replays")
    criteria = models.JSONField(default=dict, blank=True, help_text="The bulk replay's filters.")
    delivery_count = models.PositiveIntegerField(default=0)
    deliveries = models.ManyToManyField(Delivery, blank=True, related_name="replays")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"replay of {self.delivery_count} deliveries by {self.username or 'system'}"


class ApiToken(models.Model):
    """A credential for the ingest API, limited to chosen event types.

    Only a SHA-256 hash of the token is stored; the visible ``prefix`` finds the row.
    The token itself is shown once, when it is created (see eventhub.ingest.tokens).
    """

    name = models.CharField(max_length=200, help_text="Who uses it, e.g. 'billing service (PHP)'.")
    prefix = models.CharField(max_length=32, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    event_types = models.ManyToManyField(
        EventType,
        related_name="api_tokens",
        blank=True,
        help_text="The event types this token may send. None chosen: it may send none.",
    )
    allowed_sources = models.TextField(
        default="",
        help_text="The CloudEvents sources this token may send, one a line: an exact source (/billing/php), "
        "a prefix ending in * (/billing/*), or * for any. Never eventhub's own source.",
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Refused from then on; empty: never.")
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Most events accepted per calendar minute (429 with Retry-After past it); empty: no limit.",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The rate limit's current window: shared by every web process through this row.
    rate_window_start = models.DateTimeField(null=True, blank=True, editable=False)
    rate_window_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def clean(self) -> None:
        try:
            check_patterns(self.allowed_sources)
        except SourcePatternError as exc:
            raise ValidationError({"allowed_sources": str(exc)}) from exc

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class SignalHook(models.Model):
    """Emit an event when a model is saved, deleted or has its many-to-many links changed.

    Edits take effect in every running process within ``EVENTHUB["HOOKS_REFRESH_SECONDS"]``
    (see eventhub/hooks/); hooks declared in code work the same way but live in code.
    """

    class Signal(models.TextChoices):
        POST_SAVE = "post_save", "saved (post_save)"
        POST_DELETE = "post_delete", "deleted (post_delete)"
        M2M_CHANGED = "m2m_changed", "many-to-many changed (m2m_changed)"

    class When(models.TextChoices):
        ALWAYS = "always", "every time"
        CREATED = "created", "on create"
        UPDATED = "updated", "on update"
        CHANGED = "changed", "on update, only when one of the watched fields changed"

    class Payload(models.TextChoices):
        FIELDS = "fields", "the chosen fields"
        ALL = "all", "all fields (never password, token, key or secret-like ones)"
        METHOD = "method", "the model's to_event_data() method"

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.CASCADE, verbose_name="model", related_name="+"
    )
    signal = models.CharField(max_length=20, choices=Signal.choices, default=Signal.POST_SAVE)
    when = models.CharField(
        max_length=20, choices=When.choices, default=When.ALWAYS, help_text="For saves only."
    )
    watch_fields = models.CharField(
        max_length=500, blank=True, help_text="Comma-separated field names, for “only when fields changed”."
    )
    condition = models.JSONField(
        default=dict,
        blank=True,
        help_text="Optional pattern over the object's field values (route filter syntax), "
        'e.g. {"status": ["paid"]} or {"total_cents": [{"numeric": [">", 0]}]}. '
        "Foreign keys appear by their id field (customer_id).",
    )
    m2m_field = models.CharField(
        max_length=100, blank=True, help_text="The many-to-many field, for m2m_changed hooks."
    )
    event_type = models.ForeignKey(EventType, on_delete=models.PROTECT, related_name="hooks")
    payload = models.CharField(max_length=20, choices=Payload.choices, default=Payload.FIELDS)
    payload_fields = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Comma-separated field names; a foreign key gives its id (customer -> customer_id).",
    )
    subject = models.CharField(
        max_length=300,
        blank=True,
        help_text="Empty gives <app_label>.<model>/<pk>; otherwise a template such as order/{pk} "
        "or customer/{customer_id}.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class HookFailure(models.Model):
    """A hook that could not emit (payload refused by the schema, unknown type, ...).

    The user's save went through; this row tells operators which event is missing and why.
    """

    hook = models.ForeignKey(SignalHook, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    hook_name = models.CharField(max_length=200)
    event_type = models.CharField(max_length=200)
    model = models.CharField(max_length=200, help_text="app_label.model of the object")
    object_pk = models.CharField(max_length=100, blank=True)
    error = models.TextField()
    data = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at"], name="hookfailure_created")]

    def __str__(self) -> str:
        return f"{self.hook_name}: {self.error[:80]}"


class DeliveryMinute(models.Model):
    """Pre-aggregated figures of one route's deliveries in one minute or hour (eventhub/dashboard/stats.py).

    Recomputed whenever a delivery of that minute is created or finishes, so the
    dashboard's per-route figures and chart read a few hundred small rows instead
    of every delivery of the last day. Hour rows (span 60) sum the hour's minutes.
    """

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField(help_text="Start of the minute (or hour) covered.")
    span = models.PositiveSmallIntegerField(default=1, help_text="Minutes covered: 1 or 60.")
    # Deliveries created in the minute, by their status when the row was computed.
    counts = models.JSONField(default=dict)
    # Emit (event.time) to handled (finished_at) of the succeeded ones, as log-bucket counts.
    latency = models.JSONField(default=dict)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["route", "span", "minute"], name="deliveryminute_route_minute"),
        ]
        indexes = [
            models.Index(fields=["span", "minute"], name="deliveryminute_minute"),
            models.Index(fields=["refreshed_at"], name="deliveryminute_refreshed"),
        ]

    def __str__(self) -> str:
        return f"{self.route_id} @ {self.minute:%Y-%m-%d %H:%M}"


class PruneRun(models.Model):
    """One run of the pruner (eventhub/retention/): when, where, and how many rows of each kind it deleted.

    ``totals`` carries the running sums over every run, so /metrics can serve them as counters
    even after old runs are themselves pruned.
    """

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(db_index=True)
    host = models.CharField(max_length=200, blank=True, default="")
    counts = models.JSONField(default=dict, help_text="Rows deleted in this run, by kind.")
    totals = models.JSONField(default=dict, help_text="Rows deleted by every run so far, by kind.")
    complete = models.BooleanField(
        default=True, help_text="False when the run stopped early (told to stop, or an error)."
    )
    # Events that never had a delivery are swept by time up to here; the next run starts from it.
    swept_to = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-finished_at"]

    def __str__(self) -> str:
        return f"prune at {self.finished_at:%Y-%m-%d %H:%M}: {sum(self.counts.values())} rows"
