"""Library errors become barnstorm's own at the boundary, with words a user can act on."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from simulator.errors import ConnectError
from simulator.transports.http_clients import network_error_kind
from simulator.transports.mqtt.settings import MqttSettings, translated_errors


def test_a_broker_name_that_does_not_resolve_says_so() -> None:
    """getaddrinfo's failure (code -2, no errno) reads as a name that does not resolve, not
    as "unknown error -2"."""
    settings = MqttSettings.from_url("mqtt://broker.invalid:1883")
    with pytest.raises(ConnectError) as caught, translated_errors(settings):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert str(caught.value) == "cannot resolve broker.invalid: Name or service not known"


def _wrapped(cause: BaseException) -> httpx.ConnectError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise httpx.ConnectError("failed") from inner
    except httpx.ConnectError as outer:
        return outer


def test_http_failures_are_told_apart_by_their_cause() -> None:
    """A request that failed for a name that does not resolve counts as "dns", for a
    certificate as "tls", for anything else on the network as "connect"."""
    assert network_error_kind(_wrapped(socket.gaierror(-2, "Name or service not known"))) == "dns"
    assert network_error_kind(_wrapped(ssl.SSLCertVerificationError("bad"))) == "tls"
    assert network_error_kind(_wrapped(ConnectionRefusedError(111, "refused"))) == "connect"
