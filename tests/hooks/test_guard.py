"""Signal hooks cannot read secrets (issue 14, item 1).

The attack: a staff user who may only add signal hooks hooks ``sessions.Session`` and
reads a superuser's session key from the event page, or hooks ``auth.User`` and ships
password hashes to every route, or leaks a hash through a subject template.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import override_settings
from django.urls import reverse

from eventhub import hooks
from eventhub.models import HookFailure, SignalHook
from shop.models import Customer, Order
from tests.support import factories
from tests.testapp.models import Account


@pytest.fixture
def hook_author(client, db):
    """A staff user who may only add and change signal hooks (and see event types)."""
    user = get_user_model().objects.create_user("hooker", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["add_signalhook", "change_signalhook", "view_eventtype"])
    )
    client.force_login(user)
    return client


def form(model, event_type, **overrides) -> dict:
    data = {
        "name": "spy", "enabled": "on", "content_type": ContentType.objects.get_for_model(model).pk,
        "signal": "post_save", "when": "always", "watch_fields": "", "condition": "{}", "m2m_field": "",
        "event_type": event_type.pk, "payload": "all", "payload_fields": "", "subject": "",
    }  # fmt: skip
    data.update(overrides)
    return data


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Session, get_user_model(), Permission, ContentType])
def test_hooks_on_credential_models_are_refused_in_the_admin(hook_author, model):
    spied = factories.event_type("spy.saved")
    response = hook_author.post(reverse("admin:eventhub_signalhook_add"), form(model, spied))
    assert response.status_code == 200
    assert not SignalHook.objects.exists()


@pytest.mark.django_db
def test_a_hook_on_the_session_model_is_refused_by_the_check_itself():
    hook = SignalHook(
        name="spy", content_type=ContentType.objects.get_for_model(Session),
        event_type=factories.event_type("spy.saved"), payload="all",
    )  # fmt: skip
    with pytest.raises(ValidationError, match="holds credentials"):
        hooks.check_hook(hook)


def test_code_hooks_on_credential_models_are_refused_too():
    with pytest.raises(ImproperlyConfigured, match="holds credentials"):
        hooks.on_save(get_user_model(), "user.saved")


@override_settings(EVENTHUB={"HOOKS_REFUSED_MODELS": ["shop.customer"]})
def test_a_setting_refuses_more_models():
    with pytest.raises(ImproperlyConfigured, match="HOOKS_REFUSED_MODELS"):
        hooks.on_save(Customer, "customer.saved", payload=["name"])
    assert hooks.on_save(Order, "order.saved2", payload="all", name="allowed").model is Order  # others may
    hooks.unregister("allowed")


@pytest.mark.django_db
def test_all_fields_never_include_secret_like_fields():
    saved = factories.event_type("account.saved")
    factories.signal_hook(saved, model=Account, payload="all")
    Account.objects.create(name="ada", api_key="k-123", password_hash="pbkdf2$x", reset_token="t-9")
    (event,) = factories.events_of("account.saved")
    assert event.data == {"id": event.data["id"], "name": "ada"}


@pytest.mark.django_db
def test_secret_like_fields_cannot_be_chosen_or_used_in_conditions():
    saved = factories.event_type("account.saved")
    with pytest.raises(ValidationError, match="looks? secret"):
        factories.signal_hook(saved, model=Account, payload="fields", payload_fields="name, api_key")
    with pytest.raises(ValidationError, match="never read secret-like fields"):
        factories.signal_hook(
            saved, model=Account, payload="all", condition={"password_hash": [{"prefix": "p"}]}
        )


@pytest.mark.django_db
def test_no_chosen_field_is_not_all_fields():
    saved = factories.event_type("order.saved")
    with pytest.raises(ValidationError, match="Name the fields to send"):
        factories.signal_hook(saved, payload="fields", payload_fields="")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "template",
    [
        "{pk:{password_hash}}",
        "{name!r}",
        "{name.__class__}",
        "{name[0]}",
        "{pk:>{api_key}}",
        "{api_key}",
        "{}",
    ],
)
def test_subject_templates_take_plain_field_names_only(template):
    saved = factories.event_type("account.saved")
    with pytest.raises(ValidationError):
        factories.signal_hook(saved, model=Account, payload="all", subject=template)


@pytest.mark.django_db
def test_a_subject_saved_before_the_check_leaks_nothing_through_the_failure():
    saved = factories.event_type("account.saved")
    hook = factories.signal_hook(saved, model=Account, payload="all", subject="account/{pk}")
    hook.subject = "{pk:{password_hash}}"  # as a row saved before the check could be
    hook.save()
    Account.objects.create(name="ada", password_hash="pbkdf2_sha256$secret-hash")
    (failure,) = HookFailure.objects.all()
    assert "secret-hash" not in failure.error and "not a plain field name" in failure.error
    assert factories.events_of("account.saved") == []
