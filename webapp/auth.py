"""Accounts for the web app: argon2id password hashes and the user list.

`RAGCHAT_AUTH` names the users, either as a file of ``user:hash`` lines or inline as
``user:hash,user2:hash2``. New hashes are argon2id (``$argon2id$v=19$m=...``, argon2-cffi's
defaults); make one with ``python -m webapp.auth hash``. Hashes of the older
``pbkdf2_sha256$iterations$salt_hex$hash_hex`` form are still verified, so existing user files
keep working.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from rag_core.errors import ConfigError

ARGON2 = "argon2id"
ALGORITHM = "pbkdf2_sha256"  # the older format, still verified
ITERATIONS = 600_000  # OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256
LOCAL_USER = "local"  # the single user when no accounts are configured

_ENTRY_SPLIT = re.compile(r",\s*(?=[^,:$=\s]+:)")
_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)


def hash_password(
    password: str, *, iterations: int | None = None, salt: bytes | None = None
) -> str:
    """Hash a password with argon2id (``$argon2id$v=19$...``).

    Giving `iterations` (or `salt`) makes the older ``pbkdf2_sha256$iterations$salt$hash`` form
    instead, for tools and tests that need it; the web app accepts both.
    """
    if not password:
        raise ValueError("the password is empty")
    if iterations is None and salt is None:
        return _hasher.hash(password)
    return pbkdf2_hash(password, iterations=iterations or ITERATIONS, salt=salt)


def pbkdf2_hash(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The older ``pbkdf2_sha256$iterations$salt_hex$hash_hex`` form."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches `encoded`, an argon2id or pbkdf2_sha256 hash (constant-time;
    a malformed hash -> False)."""
    if encoded.startswith(f"${ARGON2}$"):
        try:
            return bool(_hasher.verify(encoded, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    try:
        algorithm, iterations, salt_hex, hash_hex = encoded.split("$")
        if algorithm != ALGORITHM:
            return False
        rounds = int(iterations)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
    except ValueError:
        return False
    if rounds < 1 or not expected:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, rounds)
    return hmac.compare_digest(digest, expected)


def _check_hash(user: str, encoded: str, where: str) -> None:
    if encoded.startswith(f"${ARGON2}$"):
        try:
            _hasher.check_needs_rehash(encoded)  # parses it: a malformed hash raises
            return
        except (InvalidHashError, ValueError) as exc:
            raise ConfigError(
                f"RAGCHAT_AUTH ({where}): the argon2id hash of user {user!r} is malformed "
                f"({exc}); make one with `python -m webapp.auth hash`"
            ) from exc
    parts = encoded.split("$")
    ok = len(parts) == 4 and parts[0] == ALGORITHM and parts[1].isdigit()
    if ok:
        try:
            bytes.fromhex(parts[2])
            bytes.fromhex(parts[3])
        except ValueError:
            ok = False
    if not ok:
        raise ConfigError(
            f"RAGCHAT_AUTH ({where}): the hash of user {user!r} is neither argon2id "
            f"($argon2id$v=19$...) nor {ALGORITHM}$iterations$salt_hex$hash_hex; "
            "make one with `python -m webapp.auth hash`"
        )


def _is_file(path: Path) -> bool:
    """Whether `path` names a file; inline users longer than a file name can be are not one."""
    try:
        return path.is_file()
    except OSError:  # e.g. "File name too long" for a long inline spec
        return False


def parse_users(spec: str) -> dict[str, str]:
    """Users and hashes from RAGCHAT_AUTH: a path to a file of user:hash lines, or inline pairs."""
    spec = spec.strip()
    path = Path(spec).expanduser()
    if _is_file(path):
        where = str(path)
        entries = [
            line.strip()
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    else:
        where = "inline"
        # argon2 hashes hold commas (m=65536,t=3,p=4): split only before a "user:"
        entries = [e.strip() for e in _ENTRY_SPLIT.split(spec) if e.strip()]
    users: dict[str, str] = {}
    for entry in entries:
        user, sep, encoded = entry.partition(":")
        user, encoded = user.strip(), encoded.strip()
        if not sep or not user or not encoded:
            shown = entry if len(entry) < 40 else entry[:37] + "..."
            raise ConfigError(
                f"RAGCHAT_AUTH ({where}): {shown!r} is not a user:hash pair "
                "(a file path that does not exist is read as inline pairs)"
            )
        _check_hash(user, encoded, where)
        users[user] = encoded
    if not users:
        raise ConfigError(f"RAGCHAT_AUTH ({where}) names no users")
    return users


def authenticator(users: dict[str, str]) -> Callable[[str, str], bool]:
    """The login check gradio calls with (username, password)."""
    dummy = hash_password(secrets.token_hex(8))

    def check(username: str, password: str) -> bool:
        encoded = users.get(username)
        if encoded is None:
            # spend the same time as for a real user, so timing does not reveal who exists
            verify_password(password, dummy)
            return False
        return verify_password(password, encoded)

    return check


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m webapp.auth hash [--user NAME]`: print a hash (or a user:hash line)."""
    parser = argparse.ArgumentParser(prog="python -m webapp.auth", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hash", help="hash a password read from the terminal (or stdin)")
    h.add_argument("--user", help="print a complete user:hash line for this user")
    args = parser.parse_args(argv)
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("The passwords differ.", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("The password is empty.", file=sys.stderr)
        return 1
    encoded = hash_password(password)
    print(f"{args.user}:{encoded}" if args.user else encoded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
