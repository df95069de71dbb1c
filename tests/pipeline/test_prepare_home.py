"""``tmpipe run`` migrates Airflow's database once, not on every run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from tmpipe import airflow_env, runner


def test_a_migrated_home_is_not_migrated_again(tmp_path, monkeypatch, migrated_databases):
    home = tmp_path / "home"
    # A database migrated by something else (no stamp: e.g. an older tmpipe) is migrated once;
    # a home without a database is migrated from nothing at the end.
    (home / "airflow").mkdir(parents=True)
    shutil.copyfile(migrated_databases / "airflow" / "airflow.db", home / "airflow" / "airflow.db")
    for key in [*airflow_env.embedded_airflow_env(home), "TMPIPE_SPEC"]:  # prepare_home sets them; undo after
        # setenv records the value to restore (or that there was none); delenv alone records
        # nothing for an absent key, so the value prepare_home sets would leak into later tests.
        absent = key not in os.environ
        monkeypatch.setenv(key, os.environ.get(key, ""))
        if absent:
            monkeypatch.delenv(key)
    migrations, really_run = [], subprocess.run

    def run_and_record(command, *args, **kwargs):
        migrations.append(command[-2:])
        return really_run(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run_and_record)
    spec = tmp_path / "spec.yaml"

    runner.prepare_home(home, spec)
    runner.prepare_home(home, spec)
    assert migrations == [["db", "migrate"]]

    stamp = home / "airflow" / runner.MIGRATED_STAMP
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "airflow": "0.0.1"}))  # Airflow upgraded since
    runner.prepare_home(home, spec)
    assert migrations == [["db", "migrate"]] * 2

    (home / "airflow" / "airflow.db").unlink()
    runner.prepare_home(home, spec)
    assert migrations == [["db", "migrate"]] * 3
    assert (home / "airflow" / "airflow.db").is_file()
