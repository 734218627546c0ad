"""Admin for ingest API tokens: the token is shown once, on the page that answers its creation."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from eventhub.admin.shown_once import shown_once_page
from eventhub.dashboard.formatting import how_many
from eventhub.ingest import tokens
from eventhub.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "allowed_types", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "event_types"]
    search_fields = ["name", "prefix"]
    filter_horizontal = ["event_types"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_tokens"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).prefetch_related("event_types")

    @admin.display(description="event types")
    def allowed_types(self, obj: ApiToken) -> str:
        return ", ".join(t.name for t in obj.event_types.all()) or "(none)"

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if not change:
            # The only time the token exists in clear (it is stored hashed): shown by response_add.
            obj._token_in_clear = tokens.assign_new_token(obj)
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)
        token = getattr(obj, "_token_in_clear", None)
        if token is None:
            return response
        return shown_once_page(
            request, self, title=f"API token for {obj.name}",
            shown=[(obj.name, token, "Send it as 'Authorization: Bearer <token>'.")],
            continue_url=response.get("Location") or reverse("admin:eventhub_apitoken_changelist"),
        )  # fmt: skip

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for api_token in queryset:
            tokens.revoke(api_token=api_token)
        self.message_user(request, f"Revoked {how_many(queryset.count(), 'token')}.", messages.SUCCESS)
