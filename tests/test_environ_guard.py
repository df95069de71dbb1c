"""The suite-wide guard in tests/conftest.py fails a test that leaves os.environ changed, and only such a test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in file order: each test after a leaking one checks that the guard put the environment back.
TESTS = '''
import os

import pytest

SECRET = "s3cr3t-value-never-shown"


@pytest.fixture(scope="module")
def module_setting():
    """Sets a variable for the whole module on purpose, and unsets it when the module ends."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GUARD_MODULE_SETTING", "on")
        yield


def test_leaks_through_a_delenv_of_an_absent_key(monkeypatch):
    monkeypatch.delenv("GUARD_ADDED", raising=False)  # records nothing to undo
    os.environ["GUARD_ADDED"] = SECRET


def test_sees_no_leak():
    assert "GUARD_ADDED" not in os.environ


def test_leaks_a_change_and_a_removal():
    os.environ["GUARD_PRESET"] = SECRET
    del os.environ["GUARD_REMOVED"]


def test_sees_them_restored():
    assert (os.environ["GUARD_PRESET"], os.environ["GUARD_REMOVED"]) == ("preset", "present")


def test_undoes_what_it_sets(monkeypatch):
    monkeypatch.setenv("GUARD_PRESET", "patched")
    monkeypatch.delenv("GUARD_REMOVED")


def test_uses_a_module_fixture_that_sets_the_environment(module_setting):
    assert os.environ["GUARD_MODULE_SETTING"] == "on"


def test_after_it_in_the_same_module(module_setting):
    assert os.environ["GUARD_MODULE_SETTING"] == "on"
'''


def test_the_guard_fails_a_test_that_leaks_an_environment_change_naming_the_keys_not_the_values(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    shutil.copyfile(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_leaks.py").write_text(TESTS)
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUARD_")}
    env |= {"GUARD_PRESET": "preset", "GUARD_REMOVED": "present"}
    ran = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-rA", "test_leaks.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 1, out
    assert "7 passed, 2 errors" in out, out
    errors = re.findall(r"^_+ ERROR at teardown of (\w+) _+\n(.*)$", out, re.M)
    assert errors == [
        ("test_leaks_through_a_delenv_of_an_absent_key", "the test left os.environ changed (restored now); added: GUARD_ADDED"),
        ("test_leaks_a_change_and_a_removal",
         "the test left os.environ changed (restored now); removed: GUARD_REMOVED, changed: GUARD_PRESET"),
    ], out
    assert "s3cr3t-value-never-shown" not in out, out
