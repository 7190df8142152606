"""Error classes of the attempt log for the exceptions aiohttp really raises."""

import ssl

import aiohttp
from aiohttp.client_reqrep import ConnectionKey

from webhookd.sender import classify

KEY = ConnectionKey("shop.example", 443, True, True, None, None, None)


def test_classify() -> None:
    assert classify(TimeoutError()) == "timeout"
    assert classify(aiohttp.ServerTimeoutError("read")) == "timeout"
    dns = aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "Name or service not known"))
    assert classify(dns) == "dns"
    certificate = aiohttp.ClientConnectorCertificateError(
        KEY, ssl.SSLCertVerificationError("certificate verify failed")
    )
    assert classify(certificate) == "tls"
    assert classify(ssl.SSLError("wrong version number")) == "tls"
    refused = aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused"))
    assert classify(refused) == "connection"
    assert classify(aiohttp.ServerDisconnectedError()) == "connection"
    assert classify(ConnectionResetError()) == "connection"
