"""Local file writes that never leave a half file at the destination."""

import os
import shutil
from pathlib import Path


def copy_atomic(src, dest, mode=None):
    """Copy ``src`` to ``dest`` through a temporary file beside it and a rename; returns ``dest`` as a Path.

    The parent folder is created. A reader (or a running binary) of ``dest``
    sees the old file or the new one, never a mix; ``mode`` (e.g. 0o755) is
    set before the rename. Raises OSError (the temporary file is removed).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
