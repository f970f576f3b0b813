"""The circuit breakers page: states at a glance, and closing a circuit."""

import pytest
from django.utils import timezone

from django_bgjobs.models import Circuit, CircuitState
from tests.admin.test_admin import (
    XSS,
    XSS_ESCAPED,
    admin_user,  # noqa: F401 (the fixture behind admin_client)
    change_url,
    messages_of,
    post_action,
    staff_client,
    url,
)

pytestmark = pytest.mark.django_db


def test_list_shows_each_circuit_with_its_state_and_escaped_error(admin_client):
    Circuit.objects.create(
        name="payments", state=CircuitState.OPEN, opened_at=timezone.now()
    )
    Circuit.objects.create(name="mail", failures=2, last_error=XSS)
    html = admin_client.get(url("circuit_changelist")).content.decode()
    assert "payments" in html
    assert ">Open<" in html
    assert ">Closed<" in html
    assert XSS_ESCAPED in html
    assert XSS not in html


def test_close_action_and_button_reset_circuits(admin_client):
    Circuit.objects.create(
        name="payments", state=CircuitState.OPEN, opened_at=timezone.now()
    )
    Circuit.objects.create(name="idle")
    response = post_action(admin_client, "circuit", "close", ["payments", "idle"])
    assert messages_of(response) == ["Close circuit: 1 changed, 0 created, 1 skipped."]
    row = Circuit.objects.get(name="payments")
    assert (row.state, row.opened_at) == (CircuitState.CLOSED, None)

    Circuit.objects.filter(name="idle").update(state=CircuitState.HALF_OPEN)
    html = admin_client.get(change_url("circuit", "idle")).content.decode()
    assert f'action="{url("circuit_close", "idle")}"' in html
    admin_client.post(url("circuit_close", "idle"))
    assert Circuit.objects.get(name="idle").state == CircuitState.CLOSED


def test_closing_needs_the_change_permission():
    Circuit.objects.create(name="payments", state=CircuitState.OPEN)
    viewer = staff_client("view_circuit")
    assert viewer.get(url("circuit_changelist")).status_code == 200
    assert viewer.post(url("circuit_close", "payments")).status_code == 403
    assert Circuit.objects.get(name="payments").state == CircuitState.OPEN
