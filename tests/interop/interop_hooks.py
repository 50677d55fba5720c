"""Schemathesis hooks (loaded by run.py through SCHEMATHESIS_HOOKS).

Generated bodies of the POST operations are random strings, which the service
answers with 4xx only. So that the success answers (200 of /issue, 202 of the
status changes, 403 of unsuspending a revoked entry...) are checked against
openapi.yaml too, a third of the POST requests get a body signed with a
registered client's key instead: a fresh `jti`, and for the status changes an
entry issued before the run. Configured by INTEROP_HOOK (a JSON file: client,
kid, key file, entries).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid

import jwt
import schemathesis

_CONFIG = json.loads(open(os.environ["INTEROP_HOOK"]).read())
_KEY = open(_CONFIG["key_file"], "rb").read()
_RNG = random.Random(0)


_POSTS = ("/issue", "/revoke", "/suspend", "/unsuspend")


def _signed(path: str) -> str:
    now = int(time.time())
    claims = {"iss": _CONFIG["client"], "iat": now, "jti": str(uuid.uuid4())}
    if path == "/issue":
        claims["statusExpiry"] = now + 86400
    else:
        uri, idx = _RNG.choice(_CONFIG["entries"])
        claims.update(uri=uri, idx=idx)
    return jwt.encode(claims, _KEY, algorithm="ES256", headers={"kid": _CONFIG["kid"], "typ": "JWT"})


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() != "POST" or case.path not in _POSTS:
        return
    if _RNG.random() < 1 / 3:
        case.body = _signed(case.path)
        if case.headers is None:
            case.headers = {}
        case.headers["Content-Type"] = "application/jwt"
    # A request JWT is text on the wire. Schemathesis 4.32 serializes a body
    # of a media type it does not know (application/jwt) as JSON, so a
    # generated string would arrive wrapped in quotes and never reach the
    # checks behind JWT decoding: send strings as they are.
    if isinstance(case.body, str):
        kwargs["data"] = case.body.encode()
