"""``/applications`` operations of the fake ARI server (res/ari/resource_applications.c).

An application is listed while a websocket holds it, and also after its websocket dropped for as
long as channels stay parked in it (``local_flow_t8_peer``: ``GET /applications/shield`` answered
200 with the parked channel while shield was disconnected). Subscriptions: ``channel:{id}`` and
``bridge:{id}`` are modelled (events flow); ``endpoint:`` and ``deviceState:`` are only listed.
"""

from __future__ import annotations

from fake_ari_rest import Call, Handler, Reply, error


def _app(call: Call) -> str | Reply:
    name = call.path_vars["applicationName"]
    if not call.world.app_exists(name):
        return error(404, "Application not found")
    return name


async def applications_list(call: Call) -> Reply:
    names = [name for name in call.world.apps if call.world.app_exists(name)]
    return 200, [call.world.app_json(name) for name in names]


async def applications_get(call: Call) -> Reply:
    name = _app(call)
    return (200, call.world.app_json(name)) if isinstance(name, str) else name


def _subscribe_one(call: Call, app: str, source: str, add: bool) -> Reply | None:
    scheme, _, ident = source.partition(":")
    world = call.world
    state = world.apps[app]
    if scheme == "channel":
        channel = world.live_channel(ident)
        if add and channel is None:
            return error(422, "Event source does not exist")
        if not add and (channel is None or app not in channel.subscribers):
            return error(422, "Event source was not subscribed to")
        assert channel is not None
        (channel.subscribers.add if add else channel.subscribers.discard)(app)
    elif scheme == "bridge":
        bridge = world.bridges.get(ident)
        if bridge is None or bridge.destroyed or (not add and app not in bridge.subscribers):
            return error(422, "Event source does not exist" if add else "Event source was not subscribed to")
        (bridge.subscribers.add if add else bridge.subscribers.discard)(app)
    elif scheme in ("endpoint", "deviceState"):
        names = state.endpoint_ids if scheme == "endpoint" else state.device_names
        if add and ident not in names:
            names.append(ident)
        elif not add and ident in names:
            names.remove(ident)
    else:
        return error(400, "Invalid event source URI scheme")
    return None


async def _subscription(call: Call, add: bool) -> Reply:
    name = _app(call)
    if not isinstance(name, str):
        return name
    for source in call.params["eventSource"].split(","):
        problem = _subscribe_one(call, name, source, add)
        if problem is not None:
            return problem
    return 200, call.world.app_json(name)


async def applications_subscribe(call: Call) -> Reply:
    return await _subscription(call, add=True)


async def applications_unsubscribe(call: Call) -> Reply:
    return await _subscription(call, add=False)


def _filter_list(value: object) -> list[str] | None:
    if not isinstance(value, list):
        return None
    types = [item.get("type") for item in value if isinstance(item, dict)]
    if len(types) != len(value) or not all(isinstance(t, str) for t in types):
        return None
    return [str(t) for t in types]


async def applications_filter(call: Call) -> Reply:
    name = _app(call)
    if not isinstance(name, str):
        return name
    body = call.body if call.body is not None else {}
    if not isinstance(body, dict):
        return error(400, "Bad request")
    state = call.world.apps[name]
    allowed = _filter_list(body.get("allowed", []))
    disallowed = _filter_list(body.get("disallowed", []))
    if allowed is None or disallowed is None:
        return error(400, "Bad request")
    if "allowed" in body or not body:  # an empty body resets both lists
        state.events_allowed = allowed
    if "disallowed" in body or not body:
        state.events_disallowed = disallowed
    return 200, call.world.app_json(name)


APPLICATION_HANDLERS: dict[tuple[str, str], Handler] = {
    ("applications", "list"): applications_list,
    ("applications", "get"): applications_get,
    ("applications", "subscribe"): applications_subscribe,
    ("applications", "unsubscribe"): applications_unsubscribe,
    ("applications", "filter"): applications_filter,
}
