"""The app side's settings: a bad MENDLINE_* value never stops the host app from starting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.schemas.errors import ConfigError
from mendline.schemas.settings import Settings

__all__ = ["SettingProblem", "app_setting_problems", "load_app_settings"]

# Without the user's own scrubbing rules an event may carry what they meant to filter:
# there is no safe default to fall back to, so a bad one turns shipping off.
_NO_FALLBACK = frozenset({"scrub_extra_keys", "scrub_extra_patterns"})


@dataclass(frozen=True)
class SettingProblem:
    """A setting the app side cannot use: ``name`` (the Settings field) and why."""

    name: str
    problem: str

    @property
    def variable(self) -> str:
        """The environment variable that sets it."""
        return f"{Settings.model_config.get('env_prefix', '')}{self.name}".upper()

    @property
    def disables_shipping(self) -> bool:
        """True when no default is safe in its place (the scrubbing rules)."""
        return self.name in _NO_FALLBACK

    def __str__(self) -> str:
        return f"{self.variable}: {self.problem}"


def app_setting_problems(settings: Settings) -> list[SettingProblem]:
    """What the processor cannot use in ``settings`` beyond what the Settings model checks
    (extra scrub keys and patterns that do not compile or would match everything).

    ``mendline doctor`` and ``mendline config show`` report these as errors; the processor
    warns and falls back (see load_app_settings)."""
    problems = []
    try:
        Scrubber(extra_keys=settings.scrub_extra_keys)
    except ConfigError as exc:
        problems.append(SettingProblem("scrub_extra_keys", str(exc)))
    try:
        Scrubber(extra_patterns=settings.scrub_extra_patterns)
    except ConfigError as exc:
        problems.append(SettingProblem("scrub_extra_patterns", str(exc)))
    return problems


def load_app_settings(settings: Settings | None = None) -> tuple[Settings, list[SettingProblem]]:
    """``settings`` (or those of the environment) with every value the app side cannot use
    replaced by its default, and one problem for each; never raises for a bad value.

    A problem whose ``disables_shipping`` is true leaves no safe default: the caller ships
    nothing."""
    problems: dict[str, SettingProblem] = {}
    if settings is None:
        values = _environment_values(problems)
    else:
        values = {name: getattr(settings, name) for name in settings.model_fields_set}
    checked = _validate(values, problems)
    unusable = app_setting_problems(checked)
    if unusable:
        for problem in unusable:
            problems.setdefault(problem.name, problem)
            values.pop(problem.name, None)
        checked = _validate(values, problems)
    return checked, list(problems.values())


class _Given(Settings):
    """Settings validated from the values given only (the environment was read already)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _environment_values(problems: dict[str, SettingProblem]) -> dict[str, Any]:
    """The MENDLINE_* values, parsed as pydantic-settings parses them, one setting at a time
    (its own parsing stops at the first bad one: a list that is not JSON)."""
    source = EnvSettingsSource(Settings)
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        value, _key, is_complex = source.get_field_value(field, name)
        try:
            value = source.prepare_field_value(name, field, value, is_complex)
        except ValueError as exc:
            # Only lists (JSON, as pydantic-settings reads them) fail to parse here.
            problems[name] = SettingProblem(
                name, f'cannot be parsed ({exc}); a list is JSON, like ["a", "b"]'
            )
            continue
        if value is not None:
            values[name] = value
    return values


def _validate(values: dict[str, Any], problems: dict[str, SettingProblem]) -> Settings:
    """Settings of ``values``, dropping (as a problem each) those the model rejects."""
    for _ in range(len(Settings.model_fields) + 1):
        try:
            given = _Given(**values)
        except ValidationError as exc:
            bad = {str(err["loc"][0]): err["msg"] for err in exc.errors() if err["loc"]}
            if not bad.keys() & values.keys():
                break
            for name, message in bad.items():
                problems.setdefault(name, SettingProblem(name, message))
                values.pop(name, None)
            continue
        return Settings.model_construct(given.model_fields_set, **dict(given))
    return Settings.model_construct()
