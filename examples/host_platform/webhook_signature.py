"""The check of the portal's `Portail-Signature` header, standard library only: copy it as it is.

The root README shows the same code (tests/test_host_platform.py keeps the two equal).
"""

import hashlib
import hmac
import time


def verify_signature(payload: bytes, header: str, secrets: list[str] | str, tolerance: int = 300,
                     now: int | None = None) -> bool:
    """Whether `header` ("t=<unix time>,v1=<hex>[,v1=<hex>…]") signs the raw body `payload` with one
    of `secrets`, at most `tolerance` seconds from `now`. Two v1 values: a secret being rotated."""
    timestamp, signatures = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdecimal() and len(value) <= 12:  # a unix time, not 5 000 digits
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value.encode())
    if timestamp is None or abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False  # no time, or too old (a replay) or too far ahead
    signed = f"{timestamp}.".encode() + payload
    for secret in filter(None, [secrets] if isinstance(secrets, str) else secrets):  # never ""
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
        if any(hmac.compare_digest(expected, signature) for signature in signatures):
            return True
    return False
