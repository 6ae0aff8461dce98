"""Every route of `app.url_map`, classified by who may use it.

The classification is written by hand, apart from the views' own `access_rule`
labels, so the suites that walk the URL map (tests/test_route_matrix.py,
tests/security/test_tenant_walls.py) hold the code to an independent list: a
new route fails `test_every_route_is_classified` until it is added here.
"""

from __future__ import annotations

import re

# Reachable without signing in (sign-in itself, signed links, health, docs).
PUBLIC = {
    "static",
    "dashboard.home",
    "health.liveness",
    "health.readiness",
    "health.metrics",
    "auth.login",
    "auth.logout",
    "auth.register",
    "auth.check_email",
    "auth.forgot_password",
    "auth.reset_password",
    "auth.verify_email",
    "auth.confirm_email_change",
    "auth.invitation",
    "auth.join",
    "auth.accept_invitation",
    "api.docs",
    "api.openapi",
}
# Act on the signed-in person's own account (their password, tokens, teams):
# every role may change these.
PERSONAL = {
    "auth.account",
    "auth.change_password",
    "auth.change_email",
    "auth.create_token",
    "auth.revoke_token",
    "auth.rotate_token",
    "auth.sign_out_everywhere",
    "auth.switch_team",
    "auth.new_team",
    "auth.resend_verification",
}
# Team data: members read, members and owners write (viewers get 403).
TEAM = {
    "auth.team_settings",
    "dashboard.index",
    "dashboard.create",
    "dashboard.edit",
    "dashboard.delete",
    "dashboard.pause",
    "api.list_endpoints",
    "api.create_endpoint",
    "api.endpoint_detail",
    "api.update_endpoint",
    "api.delete_endpoint",
    "alerts.incidents",
    "alerts.acknowledge",
    "alerts.endpoint",
    "alerts.endpoint_checks",
    "alerts.channels",
    "alerts.create_channel",
    "alerts.edit_channel",
    "alerts.delete_channel",
    "alerts.toggle_channel",
    "alerts.test_channel",
}
# Team administration: owners only (members and viewers get 403).
OWNER = {
    "auth.audit_log",
    "auth.invite",
    "auth.revoke_invitation",
    "auth.change_role",
    "auth.remove_member",
    "auth.rename_team",
    "auth.delete_team",
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# What a request needs, weakest first: nothing, a session, a role that reads the
# team's data, one that writes it, the owner's.
NEEDS = ("public", "signed-in", "read", "write", "owner")
_DECLARED = {"public": "public", "account": "signed-in", "login": "read", "write": "write", "owner": "owner"}


def routes(app):
    """Every (rule, method) pair of the URL map, HEAD and OPTIONS left out."""
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def need(app, rule, method: str) -> str:
    """What `method` on `rule` needs: the stricter of the classification above and the view's label.

    A team route's GET reads and its other methods write; a view labelled
    `write` (an edit form, a delete confirmation) needs a writer even on GET.
    """
    name = rule.endpoint
    if name in PUBLIC:
        classified = "public"
    elif name in PERSONAL:
        classified = "signed-in"
    elif name in TEAM:
        classified = "write" if method in WRITE_METHODS else "read"
    elif name in OWNER:
        classified = "owner"
    else:
        raise AssertionError(f"route {name} is not classified in tests/routes.py")
    declared = _DECLARED.get(getattr(app.view_functions[name], "access_rule", None) or "public", "owner")
    return max(classified, declared, key=NEEDS.index)


def fill(rule, values: dict) -> str:
    """The rule's path with `values` put in for its arguments."""
    path = rule.rule
    for name in rule.arguments:
        if name not in values:
            raise AssertionError(f"route {rule.endpoint} takes <{name}>: give it a value")
        path = re.sub(rf"<(?:[a-z]+:)?{name}>", str(values[name]), path)
    return path
