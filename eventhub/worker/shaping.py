"""The transform a delivery is sent with: the version of its route's transform it was made with."""

from eventhub.events import IDENTITY, Transform
from eventhub.models import Delivery, RouteTransform


def transform_for(delivery: Delivery) -> Transform:
    """The route's transform at ``delivery.transform_version`` (IDENTITY for version 0)."""
    version = delivery.transform_version
    if not version:
        return IDENTITY
    route = delivery.route
    if route.transform_version == version:
        return Transform(route.transform or {}, version)
    return stored_transform(route_id=route.pk, version=version)


def stored_transform(*, route_id: int, version: int) -> Transform:
    """An older (or newer than this process's copy) version, from the route's kept versions."""
    spec = (
        RouteTransform.objects.filter(route_id=route_id, version=version)
        .values_list("spec", flat=True)
        .first()
    )
    # Read each time: only deliveries made before the route's last edit (or after this copy) come here.
    return Transform(spec or {}, version) if spec is not None else IDENTITY
