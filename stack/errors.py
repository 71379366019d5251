"""How every command turns an exception into the one line a user reads."""

from __future__ import annotations


def first_line(error: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of ``error``'s message, at most ``limit`` characters; the exception's type name
    when the message is empty (a bare ``KeyError()``, a ``BadZipFile`` without text).

    >>> first_line(ValueError("  bad value\\n  at line 3"))
    'bad value'
    >>> first_line(KeyError())
    'KeyError'
    >>> first_line("x" * 5, limit=3)
    'xxx'
    """
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return text.splitlines()[0].strip()[:limit]
