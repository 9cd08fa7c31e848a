"""Unix seconds, the only time format of the OpenAI API."""

import time


def now() -> int:
    return int(time.time())
