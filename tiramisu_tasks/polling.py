"""The one poll-until-deadline loop (health checks, activations, sshd banners, stops)."""

import time


def poll_until(attempt, timeout, interval=0.1, on_timeout=None):
    """Call ``attempt()`` until it returns something other than None; return that.

    ``attempt`` may raise to stop early (a process that died). When ``timeout``
    seconds pass first, ``on_timeout()`` is called: its exception is raised,
    or, if it returns None (or is None), ``poll_until`` returns None. The
    attempt always runs at least once, and once more after the last sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = attempt()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            error = on_timeout() if on_timeout is not None else None
            if error is not None:
                raise error
            return None
        time.sleep(interval)
