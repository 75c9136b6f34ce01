"""Accounts for the web app: PBKDF2-SHA256 password hashes (stdlib only) and the user list.

`RAGCHAT_AUTH` names the users, either as a file of ``user:hash`` lines or inline as
``user:hash,user2:hash2``. A hash looks like ``pbkdf2_sha256$iterations$salt_hex$hash_hex``;
make one with ``python -m webapp.auth hash``.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rag_core.errors import ConfigError

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256
LOCAL_USER = "local"  # the single user when no accounts are configured


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """Hash a password as ``pbkdf2_sha256$iterations$salt_hex$hash_hex``."""
    if not password:
        raise ValueError("the password is empty")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches `encoded` (constant-time comparison; malformed hash -> False)."""
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
            f"RAGCHAT_AUTH ({where}): the hash of user {user!r} is not of the form "
            f"{ALGORITHM}$iterations$salt_hex$hash_hex; make one with `python -m webapp.auth hash`"
        )


def parse_users(spec: str) -> dict[str, str]:
    """Users and hashes from RAGCHAT_AUTH: a path to a file of user:hash lines, or inline pairs."""
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.is_file():
        where = str(path)
        entries = [
            line.strip()
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    else:
        where = "inline"
        entries = [e.strip() for e in spec.split(",") if e.strip()]
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
    h.add_argument("--iterations", type=int, default=ITERATIONS)
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
    encoded = hash_password(password, iterations=args.iterations)
    print(f"{args.user}:{encoded}" if args.user else encoded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
