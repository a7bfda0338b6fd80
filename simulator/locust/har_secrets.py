"""No secret of a recording in the map ``simulate har2map`` writes: passwords, tokens and
API keys in recorded bodies (JSON or form-encoded) and query strings become named
placeholders, ``{env:BARNSTORM_LOGIN_PASSWORD}`` and the like, which the map takes from the
environment when it is loaded (a run with one unset stops with one line naming it). The
map goes in the team's repository; the secret stays in its CI variables.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote

#: words of a field's or parameter's name that make its value a secret.
SECRET_WORDS = {
    "password", "passwd", "pass", "passphrase", "pwd", "secret", "token", "otp", "pin",
    "signature", "sig", "credential", "credentials", "sessionid", "apikey", "auth",
}  # fmt: skip
SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("session", "id")}
#: names that hold nothing secret, though a word of them says otherwise.
NOT_SECRET = {"token_type", "expires_in", "pin_code_length", "auth_method", "auth_type"}
_MARK = "__BARNSTORM_SECRET_{}__"


def variable(name: str, login: bool) -> str:
    """The environment variable a secret named ``name`` is taken from."""
    cleaned = "_".join(_words(name)).upper() or "SECRET"
    if login and re.fullmatch(r"PASS(WORD|WD)?", cleaned):
        cleaned = "PASSWORD"
    return f"BARNSTORM_{'LOGIN_' if login else ''}{cleaned}"


def _words(name: str) -> list[str]:
    """``apiKey``, ``api-key``, ``API_KEY`` -> ``["api", "key"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    return [word for word in re.split(r"[^a-z0-9]+", spaced) if word]


def secret_name(name: str) -> bool:
    """Whether a field or parameter named ``name`` holds a secret, by the words of it."""
    words = _words(name)
    if "_".join(words) in NOT_SECRET:
        return False
    return any(w in SECRET_WORDS for w in words) or any(
        pair in SECRET_PAIRS for pair in itertools.pairwise(words)
    )


def _secret(name: str, value: Any) -> bool:
    return (
        isinstance(value, str | int)
        and not isinstance(value, bool)
        and str(value) != ""
        and secret_name(name)
    )


def scrub_body(body: str | None, login: bool) -> tuple[str | None, list[str], list[str]]:
    """``body`` with each secret replaced by an ``{env:...}`` placeholder (JSON or form
    fields; ``{`` and ``}`` of the rest doubled when the body is a request's format
    template, not the login's); the variables it now needs and the values it took out."""
    if not body:
        return body, [], []
    names: list[str] = []
    values: list[str] = []
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict | list):

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                out = {}
                for key, value in node.items():
                    if _secret(str(key), value):
                        names.append(variable(str(key), login))
                        values.append(str(value))
                        out[key] = _MARK.format(len(names) - 1)
                    else:
                        out[key] = walk(value)
                return out
            if isinstance(node, list):
                return [walk(item) for item in node]
            return node

        text = json.dumps(walk(data), ensure_ascii=False, separators=(",", ":"))
        text = text if login else text.replace("{", "{{").replace("}", "}}")
        for index, name in enumerate(names):
            text = text.replace(_MARK.format(index), "{env:" + name + "}")
        return text, names, values
    if "=" in body and "\n" not in body:
        pairs = parse_qsl(body, keep_blank_values=True)
        if pairs:
            parts = []
            for key, value in pairs:
                if _secret(key, value):
                    names.append(variable(key, login))
                    values.append(value)
                    parts.append(f"{quote(key)}={{env:{names[-1]}}}")
                else:
                    parts.append(f"{quote(key)}={quote(value)}")
            if names:
                text = "&".join(parts)
                return text, names, values
    escaped = body if login else body.replace("{", "{{").replace("}", "}}")
    return escaped, [], []


def scrub_query(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Query parameters with secret values (``api_key=...``) as ``{env:...}``."""
    out, names, values = [], [], []
    for key, value in pairs:
        if _secret(key, value):
            names.append(variable(key, login=False))
            values.append(value)
            out.append((key, "{env:" + names[-1] + "}"))
        else:
            out.append((key, value))
    return out, names, values
