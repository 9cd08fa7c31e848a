"""Prefixed random ids, as OpenAI's objects carry them (file-..., ftjob-...)."""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
# Bytes below the largest multiple of the alphabet's size map onto it evenly; the rest are redrawn.
_EVEN_BELOW = 256 - 256 % len(_ALPHABET)


def new_id(prefix: str, length: int = 24) -> str:
    # One read of the system's randomness per id: secrets.choice per character read it `length`
    # times, a measurable share of a job create under load.
    chars: list[str] = []
    while len(chars) < length:
        chars += [_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(length + 8) if b < _EVEN_BELOW]
    return prefix + "".join(chars[:length])
