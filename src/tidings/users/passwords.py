"""Passwords of people who log in: the policy a new password must meet, and how passwords
are kept (argon2id) and checked.

Pure code, no database: the users service passes in what it knows (the person's e-mail,
the hashes of their last passwords) and stores what comes out.

Every password is brought to Unicode's NFKC form first, so one typed on a keyboard that
composes "é" from two keys logs in as well as one typed on a keyboard with an "é" key.
"""

from __future__ import annotations

import functools
import math
import random
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from decimal import Decimal
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.matching import L33T_TABLE
from zxcvbn.time_estimates import guesses_to_score

MIN_LENGTH = 10
MAX_LENGTH = 128
# zxcvbn's scores run 0 to 4; 3 is "safely unguessable: moderate protection from an
# offline slow-hash attack" (about 10^10 guesses), which argon2 makes slow.
MIN_SCORE = 3

# The same settings the SMPP credentials are hashed with: argon2-cffi's defaults, RFC 9106's
# low-memory profile (argon2id, 3 passes over 64 MiB, 4 lanes). A new default in a later
# argon2-cffi makes needs_rehash() true for older hashes, and the users service rehashes
# at the next log-in.
_HASHER = PasswordHasher()


class WeakPassword(ValueError):
    """A new password the policy refuses. `rule` is a code for programs (such as
    "too_short"), `detail` says in plain English which rule failed. Neither holds the
    password, and neither does the message or the repr."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail

    def __repr__(self) -> str:
        return f"WeakPassword(rule={self.rule!r}, detail={self.detail!r})"


def check_new_password(password: str, *, email: str | None = None,
                       previous_hashes: Sequence[str] = ()) -> None:
    """Raise WeakPassword for the first rule the new password breaks, in this order:
    too_short, too_long, needs_upper, needs_lower, needs_digit, common_password,
    too_guessable, reused. Return None when it breaks none.

    `email` is the person's address, whose parts make a password easier to guess;
    `previous_hashes` are the hashes of their last passwords (the users service passes
    the last 5). Each previous hash costs one argon2 verification (about a fifth of a
    second), so an async caller runs this in a thread, as it does verify_password.

    The rules read the password in Unicode's NFKC form, the form it is hashed in."""
    password = _normalized(password)
    _check_length(password)
    _check_kinds_of_character(password)
    if password.casefold() in _common_passwords():
        raise WeakPassword("common_password",
                           "The password is one of the most commonly used passwords.")
    _check_guessability(password, email)
    # Last: the slow one, and the only one that needs the person's history.
    if any(verify_password(old, password) for old in previous_hashes):
        raise WeakPassword("reused", "The password is one of the last ones used on this login.")


def hash_password(password: str) -> str:
    """The argon2id hash to store for a password (a random salt each time)."""
    return _HASHER.hash(_normalized(password))


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password is the one the hash was made from. False, never an error,
    for a wrong password and for a hash that is not an argon2 hash at all."""
    try:
        return _HASHER.verify(password_hash, _normalized(password))
    # argon2 reads a hash as ASCII: UnicodeEncodeError is another malformed hash.
    except (VerificationError, InvalidHashError, UnicodeEncodeError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether a hash was made with other settings than hash_password uses today, so the
    password should be hashed again at the next successful log-in. True for a hash that
    cannot be read: it is nothing hash_password makes."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, UnicodeEncodeError):
        return True


# Letters and digits without look-alikes (I, l, 1; O, o, 0), for a password read aloud
# or copied by hand.
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_LOWER = "abcdefghijkmnpqrstuvwxyz"
_DIGITS = "23456789"
_GROUPS, _GROUP_LENGTH = 4, 5


def temporary_password() -> str:
    """A random password that meets the policy, to give someone who must choose their own
    at the first log-in: 4 groups of 5 characters, such as "Hk7pq-3Mxze-Rt9Wn-b4Ysa"
    (about 115 bits, with at least one upper-case letter, one lower-case letter and one
    digit)."""
    return _temporary_password_from(random.SystemRandom())


def _temporary_password_from(rng: random.Random) -> str:
    """temporary_password() with its randomness from `rng` (the tests pass a seeded one)."""
    length = _GROUPS * _GROUP_LENGTH
    alphabet = _UPPER + _LOWER + _DIGITS
    characters = [rng.choice(alphabet) for _ in range(length)]
    # One of each kind, at three different places, so no draw lacks a kind.
    for place, kind in zip(rng.sample(range(length), 3), (_UPPER, _LOWER, _DIGITS),
                           strict=True):
        characters[place] = rng.choice(kind)
    groups = ("".join(characters[start:start + _GROUP_LENGTH])
              for start in range(0, length, _GROUP_LENGTH))
    return "-".join(groups)


def _normalized(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _check_length(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword("too_short", f"The password has fewer than {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword("too_long", f"The password has more than {MAX_LENGTH} characters.")


def _check_kinds_of_character(password: str) -> None:
    """Letters and digits of any script count; spaces and symbols are allowed anywhere."""
    if not any(character.isupper() for character in password):
        raise WeakPassword("needs_upper", "The password needs at least one upper-case letter.")
    if not any(character.islower() for character in password):
        raise WeakPassword("needs_lower", "The password needs at least one lower-case letter.")
    if not any(character.isdigit() for character in password):
        raise WeakPassword("needs_digit", "The password needs at least one digit.")


@functools.cache
def _common_passwords() -> frozenset[str]:
    """The shipped list (common_passwords.txt says where it comes from), read once."""
    text = resources.files(__package__).joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.casefold() for line in text.splitlines()
                     if line and not line.startswith("#"))


def _check_guessability(password: str, email: str | None) -> None:
    """Refuse a password zxcvbn scores below MIN_SCORE once the parts of the person's
    e-mail address in it are left out. An attacker who knows the address tries its parts
    first, but zxcvbn alone rates "Ann@example2026" for ann@example.com at 3: "example"
    as a known word, yet "Ann@" as a name and "2026" as a date, as if unrelated."""
    user_inputs = _user_inputs(email)
    rest = _without_words(password, user_inputs)
    with _ZXCVBN_LOCK:
        results = [zxcvbn(part, user_inputs=user_inputs) for part in _scored_parts(rest)]
    # An attacker guesses the parts one after the other: their guesses multiply.
    guesses = math.prod((result["guesses"] for result in results), start=Decimal(1))
    if guesses_to_score(guesses) < MIN_SCORE:
        weakest = min(results, key=lambda result: result["guesses"])
        raise WeakPassword("too_guessable", " ".join(filter(None, (
            "The password is too easy to guess"
            + (" once the parts of the e-mail address in it are left out." if rest != password
               else "."),
            weakest["feedback"]["warning"],
            "Add more words or characters that do not follow a pattern."))))


def _without_words(password: str, words: Sequence[str]) -> str:
    """The password with every word of 3 characters or more taken out, the longest first,
    whatever its case."""
    for word in sorted(words, key=len, reverse=True):
        if len(word) >= 3:
            password = re.sub(re.escape(word), "", password, flags=re.IGNORECASE)
    return password


# zxcvbn keeps the user inputs of a call in a module-level dictionary, so two threads
# scoring at once could see each other's; the lock costs nothing, zxcvbn holds the GIL.
_ZXCVBN_LOCK = threading.Lock()

# zxcvbn refuses more than 72 characters, and its time grows with the square of the
# length, times the number of ways it reads the "l33t" characters in it ("1" as i or l,
# "7" as l or t, ...), which doubles with nearly each different one: 20 characters, all
# different l33t characters, take it 0.2 s to 0.6 s (zxcvbn 4.5.0). So it judges the
# first 40 characters, in parts cut before every 7th different l33t character. The
# slowest such start a search found (l33t characters mixed with the letters they stand
# for, in tests/users/test_passwords.py) takes zxcvbn 25 ms of CPU on a 2-core machine,
# 40 ms when the machine was busy. Judging the start only makes a password look weaker
# than it is: a long password is accepted when its start is hard to guess, and the
# rules before this one read the whole password. The parts' guesses multiply, as zxcvbn
# multiplies those of the patterns it finds; a pattern across a cut goes unseen, but
# only after 6 different l33t characters, which are already hard to guess. (Scoring the
# first part alone refused passwords managers generate, such as "4@!$7(1+9qWe".)
_SCORED_LENGTH = 40
_MOST_L33T_KINDS = 6
_L33T_CHARACTERS = frozenset(character for subs in L33T_TABLE.values() for character in subs)


def _scored_parts(password: str) -> list[str]:
    """The start of the password that zxcvbn judges, in parts (see _SCORED_LENGTH)."""
    start = password[:_SCORED_LENGTH]
    parts: list[str] = []
    part_start, seen = 0, set[str]()
    for place, character in enumerate(start):
        if character in _L33T_CHARACTERS and character not in seen:
            if len(seen) == _MOST_L33T_KINDS:
                parts.append(start[part_start:place])
                part_start, seen = place, set()
            seen.add(character)
    parts.append(start[part_start:])
    return parts


def _user_inputs(email: str | None) -> list[str]:
    """What zxcvbn should count as easy to guess for this person: the address, its local
    part and the words in it ("ann.lee" → ann, lee), and the domain's name ("example")."""
    if not email:
        return []
    local, _, domain = email.casefold().rpartition("@")
    return list(dict.fromkeys(_nonempty(email.casefold(), local, domain,
                                        *re.split(r"[._+-]", local),
                                        *domain.split(".")[:-1])))


def _nonempty(*words: str) -> Iterator[str]:
    return (word for word in words if word)
