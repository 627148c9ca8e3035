"""``make`` installs pinned versions: every dependency in pyproject.toml is pinned in the
lock, and the environment the tests run in has exactly those versions."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", re.MULTILINE)


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"],
                                     *project["optional-dependencies"]["dev"]]]


def pinned() -> dict[str, str]:
    return {canonicalize_name(name): pin for name, pin in PIN.findall(LOCK.read_text())}


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = pinned()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in {LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}: run `make lock`")


def test_the_environment_has_the_pinned_versions() -> None:
    pins = pinned()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        try:
            installed = version(name)
        except PackageNotFoundError:
            raise AssertionError(f"{name} is not installed: run `make`") from None
        assert installed == pins[name], f"{name} {installed} installed, {pins[name]} pinned"
