"""The wheel `pip install django-oscar-loyalty` gets: complete, and only the apps.

The wheel is built offline from a copy of the working tree, so the build leaves no
``build/`` or ``*.egg-info`` behind in the repository.
"""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("oscar_loyalty", "wagtail_members")
NOT_COPIED = shutil.ignore_patterns(
    ".venv",
    "var",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "node_modules",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp("source") / "django-oscar-loyalty"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    out = tmp_path_factory.mktemp("wheelhouse")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(source),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("django_oscar_loyalty-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    with zipfile.ZipFile(wheels[0]) as archive:
        yield archive


@pytest.fixture(scope="module")
def names(wheel):
    return set(wheel.namelist())


@pytest.fixture(scope="module")
def metadata(wheel, names):
    (path,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(path).decode())


@pytest.mark.parametrize(
    "path",
    [
        "oscar_loyalty/__init__.py",
        "oscar_loyalty/apps.py",
        "oscar_loyalty/checks.py",
        "oscar_loyalty/dashboard/apps.py",
        "oscar_loyalty/templates/oscar_loyalty/dashboard/overview.html",
        "wagtail_members/apps.py",
        "wagtail_members/models.py",
        "wagtail_members/migrations/0001_initial.py",
        "wagtail_members/templates/wagtail_members/member_home_page.html",
        "wagtail_members/templates/wagtail_members/blocks/call_to_action.html",
        "oscar_loyalty/locale/zh_Hans/LC_MESSAGES/django.mo",
        "wagtail_members/locale/zh_Hans/LC_MESSAGES/django.mo",
    ],
)
def test_the_wheel_contains(names, path):
    assert path in names


def test_the_wheel_contains_every_template_static_file_and_translation(names):
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for folder in ("templates", "static", "locale")
        for path in (ROOT / package / folder).rglob("*")
        if path.is_file() and path.suffix != ".pyc"
    }

    assert expected - names == set()


def test_the_wheel_contains_every_python_module_of_both_apps(names):
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }

    assert expected - names == set()


def test_the_wheel_holds_only_the_two_apps(names):
    top_level = {name.split("/", 1)[0] for name in names}

    assert {name for name in top_level if not name.endswith(".dist-info")} == set(
        PACKAGES
    )
    assert not any(name.startswith(("example_shop/", "tests/")) for name in names)


def test_the_metadata_names_the_distribution_and_its_version(metadata):
    import oscar_loyalty

    assert metadata["Name"] == "django-oscar-loyalty"
    assert metadata["Version"] == oscar_loyalty.__version__
    assert metadata["Requires-Python"] == ">=3.11"


def test_the_metadata_requires_the_runtime_dependencies(metadata):
    requirements = metadata.get_all("Requires-Dist")
    unconditional = {
        requirement.split(";")[0].split("[")[0].split("<")[0].split(">")[0].strip()
        for requirement in requirements
        if "extra ==" not in requirement
    }

    # openpyxl: members files and downloads in XLSX, with or without Wagtail;
    # pygal: the analytics page's charts.
    assert {"Django", "django-oscar", "celery", "openpyxl", "pygal"} <= unconditional
    assert not any(name.lower().startswith("wagtail") for name in unconditional)


def test_the_metadata_offers_wagtail_as_an_extra(metadata):
    assert "wagtail" in metadata.get_all("Provides-Extra")
    wagtail_requirements = [
        requirement
        for requirement in metadata.get_all("Requires-Dist")
        if 'extra == "wagtail"' in requirement
    ]
    assert any(req.startswith("wagtail") for req in wagtail_requirements)
