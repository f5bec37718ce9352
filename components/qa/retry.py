"""Retry network reads with exponential backoff; never retry a bad-input error.

A dropped connection to the Hub or an object store should cost seconds, not a
failed run; a wrong dataset id fails at once with its own message.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)
TRANSIENT = (ConnectionError, TimeoutError, OSError)


def with_retries(read: Callable[[], T], what: str, attempts: int = 4, first_delay: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `read`; on a transient network error wait 2, 4, 8 ... s and try again."""
    from components.qa.errors import InvalidInputError

    for attempt in range(1, attempts + 1):
        try:
            return read()
        except InvalidInputError:
            raise
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise  # not transient: retrying cannot help
        except TRANSIENT as e:
            if attempt == attempts:
                raise
            delay = first_delay * 2 ** (attempt - 1)
            logger.warning("%s failed (%s: %s); retry %d/%d in %.0f s", what, type(e).__name__, e,
                           attempt, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")
