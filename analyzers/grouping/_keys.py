"""What a key name says about its value: secret, a counter or flag, an id; argv flags and SQL
parameters whose position names a secret column. Pure functions, no state."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from mendline.schemas.redaction import FILTERED

__all__ = [
    "ALL_WORDS",
    "FREE_WORDS",
    "LAST_WORDS",
    "SQL_KEYS",
    "SQL_PARAM_KEYS",
    "USER_FLAGS",
    "argv_flag",
    "argv_value",
    "attached_password",
    "flag_value_is_secret",
    "is_id_number",
    "named_secret_value",
    "names_secret_exactly",
    "secret_flag",
    "sequence_of_pairs",
    "split_key",
    "sql_secret_positions",
    "user_password",
    "word_says_secret",
]

# Words that make a key secret wherever they are in it ("db_password", "X-Auth-Token",
# "csrftoken"), as Sentry's defaults do, as long as the word is not the start of a longer one:
# "author", "tokenizer" and "authenticated" are not secret keys (see _ALLOWED_AFTER).
FREE_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "auth",
    "credential",
    "cookie",
    "session",
    "csrf",
    "xsrf",
    "dsn",
    "private_key",
    "privatekey",
    "accountkey",
    "account_key",
    "signature",
    "card_number",
    "cardnumber",
    "credit_card",
    "creditcard",
    "cvv",
    "cvc",
)
# Short words that are secret only as the last part of a key ("db_pass", "MYSQL_PWD", "sig"):
# anywhere else they are in too many ordinary words ("bypass", "passed", "signal").
LAST_WORDS = ("pass", "pwd", "sig")
ALL_WORDS = FREE_WORDS + LAST_WORDS

# What may follow a free word inside one part of a key: "tokens", "sessionid", "authtoken".
_ALLOWED_AFTER = ("id", "key", "token", "secret", "hash", "code", "z")
# Parts that make a key a counter, a flag, a setting or a description rather than the secret:
# "token_count", "max_tokens", "session_expired", "auth_method", "oauth_provider".
_BENIGN_PARTS = frozenset(
    [
        "count",
        "counts",
        "max",
        "min",
        "num",
        "len",
        "length",
        "limit",
        "limits",
        "size",
        "total",
        "used",
        "usage",
        "remaining",
        "expired",
        "expires",
        "expiry",
        "expiration",
        "expire",
        "timeout",
        "ttl",
        "age",
        "type",
        "kind",
        "provider",
        "providers",
        "method",
        "methods",
        "mode",
        "scheme",
        "enabled",
        "disabled",
        "required",
        "valid",
        "present",
        "missing",
        "exists",
        "name",
        "names",
        "field",
        "fields",
        "url",
        "uri",
        "endpoint",
        "path",
        "file",
        "version",
        "format",
        "policy",
        "rotation",
        "rotated",
        "strategy",
        "backend",
        "algorithm",
        "alg",
        "level",
        "status",
        "user",
        "username",
        "last4",
        "brand",
    ]
)
# A first part that makes the key a yes/no question: "is_authenticated", "has_token".
_FLAG_PREFIXES = frozenset(
    ["is", "has", "should", "can", "need", "needs", "use", "uses", "require", "requires", "allow"]
)
# Keys that name the secret itself, under which even a number or a boolean is filtered.
_EXACT_ENDINGS = (
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "cookie",
    "session",
    "sessionid",
    "dsn",
    "privatekey",
    "accountkey",
    "account_key",
    "signature",
    "sig",
    "pin",
    "cvv",
    "cvc",
    "cardnumber",
    "creditcard",
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[-. \t]")


def split_key(key: str) -> str:
    """``key`` lowercased with its parts joined by '_': "maxTokens" -> "max_tokens"."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", key).lower())


def word_says_secret(normalised: str, words: re.Pattern[str]) -> bool:
    """Whether ``normalised`` (see split_key) holds a secret word as a word of its own."""
    parts = [part for part in normalised.split("_") if part]
    if not parts:
        return False
    hit = parts[-1] in LAST_WORDS
    if not hit:
        for match in words.finditer(normalised):
            after = normalised[match.end() :]
            if (
                not after
                or after[0] == "_"
                or after[0].isdigit()
                or after == "s"
                or after.startswith("s_")
                or after.startswith(_ALLOWED_AFTER)
            ):
                hit = True
                break
    if not hit:
        return False
    if _names_a_key_id(parts):
        return False
    return parts[0] not in _FLAG_PREFIXES and not any(part in _BENIGN_PARTS for part in parts)


def _names_a_key_id(parts: list[str]) -> bool:
    """Whether the key parts name the public id of a key ("api_key_id", "access_key_id"),
    not the key. Google's "private_key_id" stays secret, as it always was here."""
    return (
        len(parts) >= 2
        and parts[-1] == "id"
        and parts[-2].endswith("key")
        and parts[-2] not in ("privatekey", "accountkey")
        and "private" not in parts
    )


def names_secret_exactly(key: str) -> bool:
    """Whether ``key`` names the secret itself ("password", "db_pass", "api-key"), so that a
    number or a boolean under it is a secret too ("pin: 1234" is; "token_count: 42" is not)."""
    return split_key(key).replace("_", "").endswith(_EXACT_ENDINGS)


_ID_PARTS = frozenset(
    ["id", "ids", "no", "nr", "num", "number", "ref", "reference", "invoice", "order", "tracking"]
)
_CARD_PARTS = frozenset(["card", "cc", "pan", "credit"])


def is_id_number(key: str, value: str) -> bool:
    """Whether ``value`` is an all-digit id under a key that says so ("order_id"), which a
    Luhn-valid card-shaped number must not override."""
    if not value.isdigit():
        return False
    parts = set(split_key(key).split("_"))
    return bool(parts & _ID_PARTS) and not parts & _CARD_PARTS


_FLAG = re.compile(r"--?([A-Za-z][\w-]{0,63})")
_PORTS = re.compile(r"[0-9]+(?::[0-9]+)*(?:/(?:tcp|udp))?")


def secret_flag(item: str, is_secret_key: Callable[[str], bool]) -> bool:
    """Whether the argv item ``item`` is a flag whose next item is a secret: "--token",
    "--password", "--api-key", "-p" (the MySQL and PostgreSQL clients' password flag)."""
    match = _FLAG.fullmatch(item)
    if match is None:
        return False
    name = match.group(1)
    return name == "p" or is_secret_key(name)


def flag_value_is_secret(flag: str, value: str) -> bool:
    """Whether ``value``, after the secret flag ``flag``, is the secret: not another flag, and
    after "-p" not a port mapping ("-p 8080:80" is Docker's and ssh's port, not a password)."""
    if value.startswith("-") and _FLAG.fullmatch(value) is not None:
        return False
    return not (flag == "-p" and _PORTS.fullmatch(value) is not None)


# "-u user:password" (curl, wget's --user): the part after the first ':' is the password.
USER_FLAGS = frozenset(("-u", "--user"))
# "-phunter2": the MySQL clients' password attached to its flag ("-p8080" is a port).
_ATTACHED_PASSWORD = re.compile(r"-p(?P<value>\S+)")
#: The programs whose "-p" takes its password attached.
_MYSQL_CLIENTS = frozenset(
    {
        "mysql",
        "mysqladmin",
        "mysqlcheck",
        "mysqldump",
        "mysqlimport",
        "mysqlpump",
        "mysqlshow",
        "mysqlsh",
        "mariadb",
        "mariadb-admin",
        "mariadb-check",
        "mariadb-dump",
        "mariadb-import",
        "mariadb-show",
    }
)


def argv_flag(item: str, program: str, is_secret_key: Callable[[str], bool]) -> str:
    """``item`` if it is an argv flag whose next item is or holds a secret, else "".

    ``program`` is the basename of argv[0]: "-a" is a password only for redis-cli."""
    if secret_flag(item, is_secret_key) or item in USER_FLAGS:
        return item
    return item if item == "-a" and program == "redis-cli" else ""


def argv_value(flag: str, value: str) -> str | None:
    """What ``value``, the argv item after ``flag`` (see argv_flag), becomes; None: kept."""
    if flag in USER_FLAGS:
        return user_password(value)
    return FILTERED if flag_value_is_secret(flag, value) else None


def user_password(value: str) -> str | None:
    """``value`` ("bob:hunter2", after "-u") with its password filtered; None if it has none
    ("root", mysql's user; "1000:1000", docker's uid:gid)."""
    user, colon, password = value.partition(":")
    if not colon or not password or password.isdigit():
        return None
    return f"{user}:{FILTERED}"


def attached_password(item: str, program: str) -> str | None:
    """``item`` ("-phunter2") with its attached password filtered when ``program`` (argv[0]'s
    basename) is a MySQL or MariaDB client; None if it has none ("-p", "-p8080", "-p8080:80")
    or the program is another ("gcc -pthread", "find -print" keep their flags)."""
    if program not in _MYSQL_CLIENTS:
        return None
    match = _ATTACHED_PASSWORD.fullmatch(item)
    if match is None or _PORTS.fullmatch(match.group("value")) is not None:
        return None
    return "-p" + FILTERED


# Positional placeholders of the DB-API paramstyles format (%s), qmark (?) and numeric ($1).
_PLACEHOLDER = re.compile(r"%s|\?|\$([0-9]{1,4})")
_COLUMN_BEFORE = re.compile(r"""["`\[]?(\w+)["`\]]?\s*(?:=|<>|!=|\blike\b)\s*$""", re.IGNORECASE)
_INSERT = re.compile(
    r"""\binsert\s+(?:or\s+\w+\s+)?into\s+[\w."`\[\]]+\s*\(([^()]*)\)\s*values\s*""", re.IGNORECASE
)
_ROW = re.compile(r"\s*\(([^()]*)\)\s*,?")
SQL_KEYS = ("sql", "statement", "query")
SQL_PARAM_KEYS = ("params", "parameters", "args")


def sql_secret_positions(
    context: dict[str, Any], is_secret_key: Callable[[str], bool]
) -> tuple[str, set[int]] | None:
    """For a context holding a SQL statement and its positional parameters, the key of the
    parameters and the positions whose column is secret; None when there are none.

    Only what is sure counts: a placeholder right after "column =" (SET, WHERE) or in the
    VALUES rows of an INSERT with a column list. Named parameters are a dict, whose keys the
    dict rules already judge.
    """
    statement = next((context[k] for k in SQL_KEYS if isinstance(context.get(k), str)), None)
    if statement is None:
        return None
    params_key = next((k for k in SQL_PARAM_KEYS if isinstance(context.get(k), list | tuple)), None)
    if params_key is None:
        return None
    columns: dict[int, str] = {}  # placeholder offset in the statement -> its column
    insert = _INSERT.search(statement)
    if insert is not None:
        names = [name.strip().strip('"`[]') for name in insert.group(1).split(",")]
        at = insert.end()
        while (row := _ROW.match(statement, at)) is not None and row.end() > at:
            offset = row.start(1)
            for index, item in enumerate(row.group(1).split(",")):
                placeholder = _PLACEHOLDER.fullmatch(item.strip())
                if placeholder is not None and index < len(names):
                    columns[offset + item.index(placeholder.group())] = names[index]
                offset += len(item) + 1
            at = row.end()
    secret: set[int] = set()
    ordinal = 0
    for placeholder in _PLACEHOLDER.finditer(statement):
        numbered = placeholder.group(1)
        position = int(numbered) - 1 if numbered else ordinal
        ordinal += not numbered
        column = columns.get(placeholder.start())
        if column is None:
            # Only the text just before: searching from the start each time would be
            # quadratic in a bulk statement's length.
            start = placeholder.start()
            before = _COLUMN_BEFORE.search(statement, max(0, start - 80), start)
            column = before.group(1) if before is not None else None
        if column is not None and is_secret_key(column):
            secret.add(position)
    return (params_key, secret) if secret else None


def sequence_of_pairs(value: Sequence[Any]) -> bool:
    """Whether ``value`` is a 2-item pair whose first item is a name (str or bytes)."""
    return len(value) == 2 and isinstance(value[0], str | bytes | bytearray)


# {"name": "DB_PASSWORD", "value": "..."}: Kubernetes env lists, AWS tags, header lists.
_NAME_KEYS = ("name", "Name", "key", "Key")
_VALUE_KEYS = ("value", "Value")


def named_secret_value(
    entry: dict[Any, Any], is_secret_key: Callable[[str], bool]
) -> tuple[str, str] | None:
    """For a name/value entry whose name is a secret key ({"name": "DB_PASSWORD", "value":
    "hunter4"}, {"Key": "api_key", "Value": "x"}), the key of its value and the name; None
    otherwise."""
    value_key = next((key for key in _VALUE_KEYS if key in entry), None)
    if value_key is None:
        return None
    for key in _NAME_KEYS:
        name = entry.get(key)
        if isinstance(name, str) and is_secret_key(name):
            return value_key, name
    return None
