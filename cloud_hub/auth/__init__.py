"""Who may see and do what on the hub API: users, tokens, roles scoped to a tier, the audit log.

Roles (``roles.Role``) and the tier each is scoped to (``scope.Scope``):

- ``city_admin`` (``city:<id>``): everything in its city, the audit log, gateways, users;
- ``district_operator`` (``district:<id>``): sees and acts on its district only;
- ``school_technician`` (``school:<id>``): sees and acts on its school only;
- ``viewer`` (any tier): reads its tier, never acts.

Callers authenticate with a hub token (``POST /api/v1/auth/login``, or ``campus hub user token``
for an integration), the ``campus_token`` cookie the login sets, or an identity-provider JWT when
``auth.oidc`` is configured. Every refusal (401/403) and every change is in the audit log.

Adding a route: one dependency and one query filter
----------------------------------------------------
Take the caller as a typed dependency from ``cloud_hub.api.deps``:

- ``CurrentUser``: any signed-in principal (reads);
- ``Operator``: a role that may act (not a viewer), else 403 (changes: ack, commands …);
- ``CityAdmin``: city administrators only.

Then put the caller's scope in the query's ``WHERE`` clause, with the method matching the column
you have: ``user.scope.schools(col)`` for a school id, ``user.scope.districts(col)`` for a
district id, ``user.scope.gateways(col)`` for a gateway id. A row out of scope is then not found,
and the route answers 404 exactly as for an unknown id. Record the change in the same transaction::

    from cloud_hub.api.deps import NowDep, Operator, SessionDep, not_found
    from cloud_hub.auth import audit

    @router.post("/{alert_id}/ack")
    def ack_alert(
        alert_id: int, request: Request, session: SessionDep, user: Operator, now: NowDep
    ) -> AlertPublic:
        alert = session.scalar(
            select(Alert).where(Alert.id == alert_id, user.scope.schools(Alert.school_id))
        )
        if alert is None:  # unknown or out of scope: the same 404, noted in the audit log
            raise not_found(request, user=user, now=now, what=f"alert {alert_id}")
        ...  # change it
        audit.record(session, actor=user, action="alert.ack", target=f"alert:{alert_id}",
                     result=audit.Result.OK, at=now)
        session.commit()

For a device: ``user.scope.gateways(Device.gateway_id)``; for a school row:
``user.scope.schools(School.id)``. Never filter after the query: a count, a page or a 404 computed
before the filter leaks what is out of scope.
"""
