"""Profiles: the YAML file that says what a test database is.

`load_profile(path)` reads, validates and resolves a profile. Every problem becomes one
`ProfileError` that names the file, the key path, the line and the fix.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import string
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from provisioner.errors import ProfileError
from provisioner.presets import PRESETS
from provisioner.profile_source import ProfileSource, YamlFloat, parse_source, read_source

DEFAULT_IMAGE_TEMPLATE = "postgres:{version}"
IMAGE_TEMPLATE_VARIABLE = "ENVCTL_POSTGRES_IMAGE"
SUPPORTED_MAJORS = tuple(range(12, 19))
SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
# Settings that make a throwaway server fast; `durable: true` turns them off.
TEST_FRIENDLY_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
TEMPLATE_FIELDS = (
    "url",
    "host",
    "port",
    "user",
    "password",
    "database",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sqlalchemy_url",  # postgresql+psycopg:// for SQLAlchemy 2 (connection.py)
    "asyncpg_url",  # postgresql+asyncpg://...?ssl=MODE for SQLAlchemy 2 with asyncpg
    "prisma_url",  # the URL in Prisma's dialect: schema=, sslmode disable|require (connection.py)
    "jdbc_url",  # jdbc:postgresql://host:port/db?sslmode=... for pgjdbc (connection.py)
    "npgsql",  # an Npgsql connection string: Host=...;SSL Mode=... (connection.py)
)

# `{roles.NAME.name}` and `{roles.NAME.password}`: a role of postgres.roles. NAME may hold dots;
# the attribute is what follows the last one.
ROLE_FIELD = re.compile(r"^roles\.(?P<role>.+)\.(?P<attribute>[^.]+)$")
ROLE_ATTRIBUTES = ("name", "password")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_VERSION = re.compile(r"^(\d{1,2})(?:\.(\d{1,2}))?$")
_SETTING = re.compile(r"^[a-z_][a-z0-9_.]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Settings envctl sets itself: where the server listens and where its files are. Another value
# would leave envctl unable to reach the server, or point it at files envctl does not manage.
_OWNED_SETTINGS = {
    "config_file",
    "data_directory",
    "external_pid_file",
    "hba_file",
    "ident_file",
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
}
# `-c key=value` is one argument of the server's command line: Linux refuses one over 128 KiB
# (E2BIG). No real setting is near 8 KiB; the cap leaves room for many of them.
MAX_SETTING_BYTES = 8 * 1024
# A variable reaches the suite's environment as one `NAME=value` string: 128 KiB at most.
MAX_VARIABLE_BYTES = 128 * 1024
# How many runs `envctl run` makes at most (test.repeat, --repeat).
MAX_REPEAT = 1000
# Databases envctl itself needs: template0/template1 make every database, envctl connects to
# postgres to reset, clone and drop the test database.
_RESERVED_DATABASES = {"template0", "template1", "postgres"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _too_long(name: str) -> bool:
    # Postgres truncates identifiers to 63 bytes (NAMEDATALEN - 1), not characters.
    return len(name.encode("utf-8", errors="surrogateescape")) > 63


def _no_control_characters(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} must not contain control characters such as newlines")
    return value


def _ssl_from_string(value: Any) -> Any:
    # `ssl: require` is shorthand for `ssl: {mode: require}`.
    if isinstance(value, str):
        return {"mode": value}
    if isinstance(value, bool):
        return {"mode": "require" if value else "disable"}
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Strict(BaseModel):
    # Empty lists and mappings come from lambdas, not from `list` or `dict`: pydantic reads the
    # signature of every default factory, and a builtin's runs the tokenizer for the first time
    # in the process (about 3 ms of every `validate`).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SslConfig(_Strict):
    """How clients and server agree on TLS."""

    # prefer: the server offers SSL and accepts plain connections too, as most real servers do.
    mode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "disable"
    client_cert: bool = False

    @model_validator(mode="after")
    def _client_cert_needs_ssl(self) -> SslConfig:
        if self.client_cert and self.mode == "disable":
            raise ValueError("client_cert: true needs an SSL mode other than disable")
        if self.client_cert and self.mode == "prefer":
            # pg_hba demands a certificate only on hostssl lines: a plain client cannot send one.
            raise ValueError(
                "client_cert: true needs SSL on every connection: use require, verify-ca or "
                "verify-full, not prefer"
            )
        return self


SettingValue = str | int | float | bool
Owners = Literal["keep", "drop", "create"]


class SeedOptions(_Strict):
    """How archives are restored; set for the whole list (`seed_options`) or per item."""

    owners: Owners | None = None  # keep | drop | create (default create)
    jobs: int | None = Field(default=None, ge=1, le=64)
    schema_only: bool | None = None
    data_only: bool | None = None


class SeedItem(SeedOptions):
    """One seed: a file (SQL, .sql.gz, any pg_dump archive, pg_dumpall output) or inline SQL."""

    path: Path | None = None
    sql: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SeedItem:
        if (self.path is None) == (self.sql is None):
            raise ValueError("a seed item has either path or sql (exactly one)")
        if self.schema_only and self.data_only:
            raise ValueError("schema_only and data_only exclude each other")
        return self


def _seed_item(value: Any) -> Any:
    # A plain string in the seed list is a path.
    return {"path": value} if isinstance(value, str) else value


class RoleConfig(_Strict):
    """An extra role created before any seed (owners of objects in dumps, app users)."""

    name: str
    password: str | None = None
    login: bool = True
    superuser: bool = False
    createdb: bool = False

    @field_validator("name")
    @classmethod
    def _role_name(cls, value: str) -> str:
        if not value or _too_long(value):
            raise ValueError("a role name has 1 to 63 bytes (UTF-8)")
        return _no_control_characters(value, "the role name")


def _role(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class PostgresConfig(_Strict):
    """The server: version, where it listens, who logs in, how it is configured."""

    version: str = "16"
    image: str | None = None
    port: int | Literal["auto"] = "auto"
    host: str = "127.0.0.1"
    user: str = "postgres"
    password: str | None = None
    database: str = "test"
    settings: dict[str, SettingValue] = Field(default_factory=lambda: {})
    durable: bool = False
    ssl: Annotated[SslConfig, BeforeValidator(_ssl_from_string)] = Field(default_factory=SslConfig)
    startup_timeout: float = Field(default=60.0, gt=0, le=3600)
    bin_dir: Path | None = None  # native runtime: the folder with initdb, postgres, pg_ctl
    locale: str = "en_US.UTF-8"
    encoding: str = "UTF8"
    roles: list[Annotated[RoleConfig, BeforeValidator(_role)]] = Field(default_factory=lambda: [])
    extensions: list[str] = Field(default_factory=lambda: [])
    schemas: list[str] = Field(default_factory=lambda: [])
    seed: list[Annotated[SeedItem, BeforeValidator(_seed_item)]] = Field(default_factory=lambda: [])
    seed_options: SeedOptions = Field(default_factory=SeedOptions)
    migrate: MigrateConfig | None = None
    # template1 becomes a copy of the seeded, migrated database, so that every database the
    # suite creates itself (CREATE DATABASE with no TEMPLATE, createdb, Medusa's runner)
    # starts in that state instead of empty.
    template1: bool = False

    @field_validator("locale", "encoding")
    @classmethod
    def _locale(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.@-]{1,64}$", value):
            raise ValueError(f"'{value}' is not a locale or encoding name")
        return value

    @field_validator("extensions", "schemas")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or _too_long(name):
                raise ValueError(f"'{name}' must be 1 to 63 bytes long (UTF-8)")
            _no_control_characters(name, "the name")
        return value

    @property
    def has_seed(self) -> bool:
        """Whether anything is set up beyond an empty database."""
        return bool(self.roles or self.extensions or self.schemas or self.seed or self.migrate)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # YAML reads `version: 16` as an int and `16.4` as a float: both mean the text, but
        # the float of `16.10` is 16.1, another version.
        if isinstance(value, YamlFloat) and value.text != str(value):
            raise ValueError(
                f'write version: "{value.text}" in quotes: YAML reads {value.text} as the '
                f"number {value}"
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value in ("auto", "nearest"):
            return value
        match = _VERSION.match(value)
        if not match:
            raise ValueError(
                f"'{value}' is not a Postgres version: write a major such as 16 or 16.4"
            )
        if int(match.group(1)) not in SUPPORTED_MAJORS:
            majors = ", ".join(str(m) for m in SUPPORTED_MAJORS)
            raise ValueError(f"Postgres {match.group(1)} is not supported: use one of {majors}")
        return value

    @field_validator("port", mode="before")
    @classmethod
    def _port_not_bool(cls, value: Any) -> Any:
        # pydantic takes true for 1: a port must be written as a number.
        if isinstance(value, bool):
            raise ValueError(f"{str(value).lower()} is not a port: use a number 1-65535 or auto")
        return value

    @field_validator("port")
    @classmethod
    def _port_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 65535:
            raise ValueError(f"port {value} is out of range: use 1-65535 or auto")
        return value

    @field_validator("host")
    @classmethod
    def _bind_address(cls, value: str) -> str:
        if value == "localhost":
            return "127.0.0.1"
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not an IP address to bind to: use 127.0.0.1 (the default)"
            ) from None
        return value

    @field_validator("user", "database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value or _too_long(value):
            raise ValueError("must be 1 to 63 bytes long (UTF-8)")
        return _no_control_characters(value, "the name")

    @field_validator("database")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in _RESERVED_DATABASES:
            raise ValueError(
                f"'{value}' is a database envctl needs for itself (template0 and template1 "
                "make new databases, envctl connects to postgres to reset and clone): "
                "name the test database, e.g. test"
            )
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        if value is not None:
            if not value:
                raise ValueError("an empty password cannot log in: remove the key for a random one")
            _no_control_characters(value, "the password")
        return value

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict[str, SettingValue]) -> dict[str, SettingValue]:
        for key, setting in value.items():
            if not _SETTING.match(key):
                raise ValueError(f"'{key}' is not a server setting name")
            if key in _OWNED_SETTINGS or key.startswith("ssl"):
                raise ValueError(
                    f"'{key}' is set by envctl: it decides where the server listens and keeps "
                    "its files (see postgres.ssl, postgres.port, postgres.host)"
                )
            text = _setting_text(setting)
            _no_control_characters(text, f"the value of {key}")
            if len(text.encode("utf-8", errors="surrogateescape")) > MAX_SETTING_BYTES:
                raise ValueError(
                    f"the value of {key} is over {MAX_SETTING_BYTES // 1024} KiB, "
                    "the cap of a setting"
                )
        return value

    @property
    def major(self) -> int:
        """The major version, e.g. 16 for "16.4"."""
        if self.version in ("auto", "nearest"):
            raise ProfileError(
                f"postgres.version is {self.version} but no backup in postgres.seed says which "
                "version",
                hint="set postgres.version, or add a pg_dump backup to postgres.seed",
            )
        return int(self.version.split(".")[0])

    def resolved_image(self) -> str:
        """The image to run: `image` if set, else the (overridable) template."""
        if self.image:
            return self.image
        template = os.environ.get(IMAGE_TEMPLATE_VARIABLE) or DEFAULT_IMAGE_TEMPLATE
        try:
            return template.format(version=self.version, major=self.major)
        except (KeyError, IndexError, ValueError):
            raise ProfileError(
                f"{IMAGE_TEMPLATE_VARIABLE}='{template}' is not a valid image template",
                hint="use {version} or {major}, e.g. mirror.example/postgres:{major}",
            ) from None

    def server_settings(self) -> dict[str, str]:
        """Every `-c` setting the server starts with: test-friendly defaults, then the profile's."""
        merged = {} if self.durable else dict(TEST_FRIENDLY_SETTINGS)
        for key, value in self.settings.items():
            merged[key] = _setting_text(value)
        return merged


def _setting_text(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class EnvConfig(_Strict):
    """Which file to write and which variables go in it."""

    file: Path | None = Path(".env.test")
    preset: Annotated[list[str], BeforeValidator(_one_or_many)] = Field(
        default_factory=lambda: ["url", "libpq"]
    )
    vars: dict[str, str] = Field(default_factory=lambda: {})

    @field_validator("preset")
    @classmethod
    def _known_presets(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in PRESETS:
                close = _closest(name, PRESETS)
                suggestion = f" (did you mean '{close}'?)" if close else ""
                raise ValueError(
                    f"unknown preset '{name}'{suggestion}: choose from {', '.join(PRESETS)}"
                )
        return value

    @field_validator("vars")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid environment variable name")
            _no_control_characters(template, f"the template of {name}")
            _check_variable_size(name, template)
            for field in _template_fields(template, name):
                role = ROLE_FIELD.match(field)
                if role is not None and role["attribute"] not in ROLE_ATTRIBUTES:
                    raise ValueError(
                        f"{name}: unknown placeholder '{{{field}}}': a role's are "
                        f"{{roles.{role['role']}.name}} and {{roles.{role['role']}.password}}"
                    )
                if field not in TEMPLATE_FIELDS and role is None:
                    close = _closest(field, TEMPLATE_FIELDS)
                    suggestion = f" (did you mean '{{{close}}}'?)" if close else ""
                    raise ValueError(
                        f"{name}: unknown placeholder '{{{field}}}'{suggestion}; "
                        f"known: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}, "
                        "and {roles.NAME.name}, {roles.NAME.password} for a role of "
                        "postgres.roles"
                    )
        return value


def _template_fields(template: str, name: str) -> list[str]:
    """The placeholders of `template`; only plain `{name}`: a format spec or conversion
    (`{port:d}`, `{url!x}`) fails or runs away when rendered."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc} (write {{{{ and }}}} for literal braces)") from None
    fields = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec or conversion:
            written = (
                f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            )
            raise ValueError(
                f"{name}: '{written}' in '{template}': a placeholder is a plain {{name}}, "
                f"e.g. {{{field}}}, without a format (:...) or conversion (!...)"
            )
        fields.append(field)
    return fields


def _check_variable_size(name: str, value: str) -> None:
    size = len(name) + 1 + len(value.encode("utf-8", errors="surrogateescape"))
    if size >= MAX_VARIABLE_BYTES:
        raise ValueError(
            f"{name} is {size} bytes: a variable may have at most {MAX_VARIABLE_BYTES // 1024} "
            "KiB (the limit of one environment string)"
        )


class SuiteContainer(_Strict):
    """Run the suite in a container on the environment's network instead of on the host."""

    image: str
    env: dict[str, str] = Field(default_factory=lambda: {})
    user: str | None = None  # default: the image's user

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the image is empty")
        return _no_control_characters(value, "the image")


class _Command(_Strict):
    """A command envctl runs on the host with the environment's variables: the suite, the
    migrations."""

    command: list[str] | str | None = None
    workdir: Path = Path(".")
    env: dict[str, str] = Field(default_factory=lambda: {})
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("command", mode="before")
    @classmethod
    def _words_as_text(cls, value: Any) -> Any:
        # `command: [sleep, 5]` means the word "5"; YAML's true/false cannot be read back.
        if isinstance(value, list):
            words = []
            for word in value:
                if isinstance(word, bool):
                    raise ValueError(
                        "quote words such as 'true' or 'yes': YAML reads them as booleans"
                    )
                words.append(str(word) if isinstance(word, int | float) else word)
            return words
        return value

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: list[str] | str | None) -> list[str] | str | None:
        if value is not None and not value:
            raise ValueError("the command is empty")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid environment variable name")
            _check_variable_size(name, text)
        return value


class TestConfig(_Command):
    """How `envctl run` runs the suite."""

    __test__ = False  # not a pytest test class

    junit: str | None = None  # a glob of JUnit XML files the suite writes, relative to workdir
    container: SuiteContainer | None = None
    repeat: int = Field(default=1, ge=1, le=MAX_REPEAT)


class MigrateConfig(_Command):
    """The app's migrations, run once after the seed: their result is the seeded state that
    the cache keeps and `reset`, clones and `--repeat` go back to."""

    command: list[str] | str
    timeout: float | None = Field(default=600.0, gt=0)
    # Globs, relative to workdir, of what the migrations read (migration files, lock files):
    # their content is part of the cache key, so an edit of any of them is a miss.
    inputs: list[str] = Field(default_factory=lambda: [])

    @field_validator("inputs")
    @classmethod
    def _relative_globs(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip():
                raise ValueError("an input glob is empty")
        return value


class Profile(_Strict):
    """A whole profile, with paths resolved against the profile's folder."""

    name: str
    runtime: Literal["auto", "docker", "native"] = "auto"
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    test: TestConfig = Field(default_factory=TestConfig)
    path: Path | None = Field(default=None, exclude=True)
    # The profile's file and its `extends:` bases: files envctl reads, never writes.
    sources: tuple[Path, ...] = Field(default=(), exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"'{value}' is not a valid name: use lowercase letters, digits, '-', '_' or '.'"
            )
        return value

    @property
    def folder(self) -> Path:
        """The folder that relative paths in the profile are resolved against."""
        return self.path.parent if self.path else Path.cwd()

    @property
    def env_id(self) -> str:
        """Identifies this profile's environment: its name plus a hash of where it lives."""
        where = str(self.path.resolve()) if self.path else self.name
        return f"{self.name}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"

    @property
    def env_file(self) -> Path | None:
        """The env file's absolute path, or None when the profile writes none."""
        return None if self.env.file is None else (self.folder / self.env.file).resolve()

    @property
    def workdir(self) -> Path:
        """The folder the suite runs in."""
        return (self.folder / self.test.workdir).resolve()


def load_profile(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Profile:
    """Read and validate the profile at `path`; raise ProfileError naming file, key and fix.

    The profile's `extends:` bases are merged in and `${VAR}`s filled in from the environment;
    `overrides` maps dotted keys (`postgres.port`) to values that replace the file's.
    """
    return _validate(read_source(Path(path), overrides))


def parse_profile(text: str, path: Path, overrides: Mapping[str, Any] | None = None) -> Profile:
    """Validate profile text; `path` names the file in errors and anchors relative paths."""
    return _validate(parse_source(text, path, overrides))


def _validate(source: ProfileSource) -> Profile:
    data = source.data
    clear_nulls(data, Profile)
    data.setdefault("name", _default_name(source.path))
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise _profile_error(exc, source) from None
    except RecursionError:
        raise ProfileError(f"{source.path}: the document nests too deeply") from None
    _check_role_references(profile, source)
    sources = tuple(document.path.resolve() for document in source.documents)
    return profile.model_copy(update={"path": source.path.resolve(), "sources": sources})


def _check_role_references(profile: Profile, source: ProfileSource) -> None:
    """Every `{roles.NAME....}` in env.vars names a role of postgres.roles (with a password,
    for `.password`)."""
    roles = {role.name: role for role in profile.postgres.roles}
    for name, template in profile.env.vars.items():
        for field in _template_fields(template, name):
            match = ROLE_FIELD.match(field)
            if match is None:
                continue
            where = f"{source.where(('env', 'vars', name))}: env.vars.{name}"
            role = roles.get(match["role"])
            if role is None:
                close = _closest(match["role"], roles)
                suggestion = f" (did you mean '{close}'?)" if close else ""
                declared = ", ".join(roles) or "none"
                raise ProfileError(
                    f"{where}: '{{{field}}}' names the role '{match['role']}', which "
                    f"postgres.roles does not declare{suggestion}",
                    hint=f"roles declared: {declared}; add it to postgres.roles or fix the name",
                )
            if match["attribute"] == "password" and role.password is None:
                raise ProfileError(
                    f"{where}: '{{{field}}}': the role '{role.name}' has no password in the "
                    "profile",
                    hint=f"give the role a password in postgres.roles ({role.name})",
                )


def clear_nulls(data: dict[str, Any], model: type[BaseModel]) -> None:
    """`null` clears, at every level: a key whose value is null is taken out, so that its
    default (or nothing, in a mapping such as test.env) applies, unless null is a value the
    key takes itself (`env.file: null` writes no file, `password: null` is a random one)."""
    for key, value in list(data.items()):
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            continue  # an unknown key: validation names it
        annotation = field.annotation
        if value is None:
            if not _admits_none(annotation):
                del data[key]
        elif isinstance(value, dict):
            inner = _model_in(annotation)
            if inner is not None:
                clear_nulls(value, inner)
            elif typing.get_origin(annotation) is dict:
                for name in [name for name, item in value.items() if item is None]:
                    del value[name]


def _admits_none(annotation: Any) -> bool:
    return annotation is None or type(None) in typing.get_args(annotation)


def _default_name(path: Path) -> str:
    stem = re.sub(r"[^a-z0-9_.-]+", "-", path.stem.lower()).strip("-._")
    return stem or "envctl"


def _closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a misspelt word most likely meant, if one is close enough."""
    import difflib  # only a profile with a mistake needs it (1 ms of every validate)

    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


def _profile_error(exc: ValidationError, source: ProfileSource) -> ProfileError:
    error = exc.errors()[0]
    loc = _clean_location(error["loc"], source.data)
    key = ".".join(str(part) for part in loc) or "(top level)"
    where = source.where(loc)
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        close = _closest(str(loc[-1]), allowed)
        hint = f"did you mean '{close}'?" if close else f"known keys here: {', '.join(allowed)}"
        return ProfileError(f"{where}: unknown key '{key}'{suffix}", hint=hint)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required"
    return ProfileError(
        f"{where}: {key}: {message}{suffix}",
        hint="see the profile reference in README.md",
    )


def _clean_location(loc: tuple[int | str, ...], data: Any) -> tuple[int | str, ...]:
    # Pydantic inserts union branch names ("int", "literal['auto']") into locations. A part
    # is a key when the data has it there: a key may be named "int" too.
    cleaned: list[int | str] = []
    node = data
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]
        elif isinstance(part, str) and (part.endswith("]") or part in {"int", "str", "float"}):
            continue
        else:
            node = None
        cleaned.append(part)
    return tuple(cleaned)


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    model: Any = Profile
    for part in loc:
        if isinstance(part, int):  # an index into a list: the item's model stays the same
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
    # Profile.path is where the file was read from, not a key anyone writes.
    return [
        name for name in getattr(model, "model_fields", {}) if (model, name) != (Profile, "path")
    ]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def repro_profile(
    backup: Path, version: str = "auto", port: int | Literal["auto"] = "auto"
) -> Profile:
    """A profile that restores `backup` into the Postgres major it was dumped from."""
    slug = re.sub(r"[^a-z0-9]+", "-", backup.name.lower()).strip("-")[:40] or "backup"
    return Profile(
        name=f"repro-{slug}",
        postgres=PostgresConfig(version=version, port=port, seed=[SeedItem(path=backup.resolve())]),
        env=EnvConfig(file=None),
    ).model_copy(update={"path": backup.resolve()})
