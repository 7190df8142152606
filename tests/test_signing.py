import time

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from webhookd.signing import SecretError, decode_secret, signature

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_standard_webhooks_published_vector() -> None:
    key = decode_secret(SPEC_SECRET)
    assert (
        signature((key,), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verified_by_the_standardwebhooks_package() -> None:
    old, new = SPEC_SECRET, "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    keys = (decode_secret(old), decode_secret(new))
    body = b'{"events":[{"order_create":{"order_id":"DEMO-1"}}]}'
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature(keys, "msg_1", now, body),
    }
    assert headers["webhook-signature"].count("v1,") == 2
    # A receiver holding either secret (key rotation) verifies.
    for secret in (old, new):
        assert Verifier(secret).verify(body, headers) == {
            "events": [{"order_create": {"order_id": "DEMO-1"}}]
        }


@pytest.mark.parametrize("bad", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_QUJD"])
def test_bad_secrets(bad: str) -> None:
    with pytest.raises(SecretError):
        decode_secret(bad)
