"""Embedded WebUI store on SQLite: the default for local runs and what `tmpipe webui serve` serves."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tmpipe.clock import utc_now
from tmpipe.errors import NotFoundError, StoreError
from tmpipe.store.models import Artifact, ArtifactCreate, ArtifactRevision, LinkUpdate, SymbolUpdate, WorkflowLink, WorkflowSymbol
from tmpipe.store.artifact_validation import (
    CONFLICT,
    SCORE_TYPE,
    UNPROCESSABLE,
    check_artifact,
    check_link_config,
    graded_signal_mismatch,
    raise_if,
)
from tmpipe.symbols import validate_symbol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workflow_symbols (
    id INTEGER PRIMARY KEY, symbol TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL, priority INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS workflow_links (
    id INTEGER PRIMARY KEY, symbol_id INTEGER NOT NULL REFERENCES workflow_symbols(id),
    dag_id TEXT NOT NULL, is_active INTEGER NOT NULL, config TEXT NOT NULL, notes TEXT,
    UNIQUE (symbol_id, dag_id)
);
CREATE TABLE IF NOT EXISTS artifact_revisions (
    id INTEGER PRIMARY KEY, artifact_id INTEGER NOT NULL REFERENCES artifacts(id), revision INTEGER NOT NULL,
    content TEXT NOT NULL, mlflow_run_id TEXT, mlflow_experiment_id TEXT,
    written_at TEXT NOT NULL, replaced_at TEXT NOT NULL, replaced_by TEXT NOT NULL,
    UNIQUE (artifact_id, revision)
);
"""
# One artifact per (dag_id, dag_run_id, symbol, type), except a signal_score: it has its scoring
# run's identity, and one per graded signal (graded_signal_id) - a signal is graded once.
_ARTIFACTS = """
CREATE TABLE {name} (
    id INTEGER PRIMARY KEY, dag_id TEXT NOT NULL, dag_run_id TEXT NOT NULL, symbol TEXT NOT NULL,
    artifact_type TEXT NOT NULL, content TEXT NOT NULL,
    mlflow_run_id TEXT, mlflow_experiment_id TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 1, graded_signal_id INTEGER REFERENCES artifacts(id)
)
"""
_ARTIFACT_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS artifacts_identity ON artifacts (dag_id, dag_run_id, symbol, artifact_type)
    WHERE graded_signal_id IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS artifacts_graded_once ON artifacts (graded_signal_id) WHERE graded_signal_id IS NOT NULL;
"""
_INDEXES = {"artifacts_identity", "artifacts_graded_once"}
_COLUMNS = ("id, dag_id, dag_run_id, symbol, artifact_type, content, mlflow_run_id, mlflow_experiment_id, created_at, "
            "updated_at, revision")


class SqliteArtifactStore:
    """Same semantics as the HTTP API; safe for several processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            current = {row["name"] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")} >= _INDEXES
        if not current:
            with self._connect(write=True) as db:
                _create_or_upgrade_artifacts(db)

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """``write`` takes the write lock first, so a read-then-write cannot race another process."""
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:
                if write:
                    db.execute("BEGIN IMMEDIATE")
                yield db
        finally:
            db.close()

    def list_workflow_symbols(self, enabled_only: bool = True) -> list[WorkflowSymbol]:
        with self._connect() as db:
            where = "WHERE enabled = 1" if enabled_only else ""
            rows = db.execute(f"SELECT * FROM workflow_symbols {where} ORDER BY priority, symbol").fetchall()
            links = db.execute("SELECT * FROM workflow_links ORDER BY id").fetchall()
        by_symbol: dict[int, list[WorkflowLink]] = {}
        for link in links:
            by_symbol.setdefault(link["symbol_id"], []).append(_link(link))
        return [
            WorkflowSymbol(id=r["id"], symbol=r["symbol"], enabled=bool(r["enabled"]), priority=r["priority"], links=by_symbol.get(r["id"], []))
            for r in rows
        ]

    def add_symbol(self, symbol: str, *, priority: int = 100, enabled: bool = True) -> WorkflowSymbol:
        validate_symbol(symbol)
        with self._connect() as db:
            try:
                cursor = db.execute(
                    "INSERT INTO workflow_symbols (symbol, enabled, priority) VALUES (?, ?, ?)", (symbol, int(enabled), priority)
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"symbol {symbol} already exists", status=409) from exc
        assert cursor.lastrowid is not None  # set by the INSERT above
        return WorkflowSymbol(id=cursor.lastrowid, symbol=symbol, enabled=enabled, priority=priority)

    def add_link(
        self, symbol: str, dag_id: str, *, config: dict[str, Any] | None = None, active: bool = True, notes: str | None = None
    ) -> WorkflowLink:
        check_link_config(config or {})
        with self._connect() as db:
            row = db.execute("SELECT id FROM workflow_symbols WHERE symbol = ?", (symbol,)).fetchone()
            if row is None:
                raise NotFoundError(f"no workflow symbol {symbol}")
            cursor = db.execute(
                "INSERT INTO workflow_links (symbol_id, dag_id, is_active, config, notes) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (symbol_id, dag_id) DO UPDATE SET is_active = excluded.is_active, "
                "config = excluded.config, notes = excluded.notes RETURNING id",
                (row["id"], dag_id, int(active), json.dumps(config or {}), notes),
            )
            link_id = cursor.fetchone()[0]
        return WorkflowLink(id=link_id, dag_id=dag_id, is_active=active, config=config or {}, notes=notes)

    def update_symbol(self, symbol: str, changes: SymbolUpdate) -> WorkflowSymbol:
        """Set ``enabled`` and/or ``priority``; fields left out (or null) stay as they are."""
        values = {k: v for k, v in changes.model_dump(exclude_unset=True).items() if v is not None}
        with self._connect(write=True) as db:
            row = _symbol_row(db, symbol)
            if values:
                assignments = ", ".join(f"{column} = ?" for column in values)
                db.execute(f"UPDATE workflow_symbols SET {assignments} WHERE id = ?", (*[int(v) for v in values.values()], row["id"]))
        return self._symbol(symbol)

    def remove_symbol(self, symbol: str) -> None:
        """Delete the symbol and its links; its artifacts (and their revisions) stay."""
        with self._connect(write=True) as db:
            row = _symbol_row(db, symbol)
            db.execute("DELETE FROM workflow_links WHERE symbol_id = ?", (row["id"],))
            db.execute("DELETE FROM workflow_symbols WHERE id = ?", (row["id"],))

    def update_link(self, symbol: str, dag_id: str, changes: LinkUpdate) -> WorkflowLink:
        """Set ``is_active``, ``config`` (validated like a new link's) and/or ``notes`` (null clears them)."""
        values = {k: v for k, v in changes.model_dump(exclude_unset=True).items() if v is not None or k == "notes"}
        if values.get("config") is not None:
            check_link_config(values["config"])
            values["config"] = json.dumps(values["config"])
        if "is_active" in values:
            values["is_active"] = int(values["is_active"])
        with self._connect(write=True) as db:
            link = _link_row(db, symbol, dag_id)
            if values:
                assignments = ", ".join(f"{column} = ?" for column in values)
                db.execute(f"UPDATE workflow_links SET {assignments} WHERE id = ?", (*values.values(), link["id"]))
            return _link(db.execute("SELECT * FROM workflow_links WHERE id = ?", (link["id"],)).fetchone())

    def remove_link(self, symbol: str, dag_id: str) -> None:
        """Delete the link (a real delete: to keep its config for later, deactivate it instead)."""
        with self._connect(write=True) as db:
            db.execute("DELETE FROM workflow_links WHERE id = ?", (_link_row(db, symbol, dag_id)["id"],))

    def _symbol(self, symbol: str) -> WorkflowSymbol:
        return next(s for s in self.list_workflow_symbols(enabled_only=False) if s.symbol == symbol)

    def save_artifact(self, artifact: ArtifactCreate) -> Artifact:
        return self.write_artifact(artifact)[0]

    def write_artifact(self, artifact: ArtifactCreate) -> tuple[Artifact, bool]:
        """Create, or replace the content keeping the old one as a revision; True when created.

        Writing the same content again (a retried task) changes nothing. A ``signal_score`` is
        found by its graded signal: a second score of that signal from another run is refused (409).
        """
        check_artifact(artifact)
        key = (artifact.dag_id, artifact.dag_run_id, artifact.symbol, artifact.artifact_type)
        content, now = json.dumps(artifact.content), utc_now()
        by: tuple[Any, ...]
        with self._connect(write=True) as db:
            if artifact.graded_signal_id is None:
                find, by = ("SELECT * FROM artifacts WHERE dag_id = ? AND dag_run_id = ? AND symbol = ? AND artifact_type = ? "
                            "AND graded_signal_id IS NULL"), key
            else:
                _graded_signal(db, artifact)
                find, by = "SELECT * FROM artifacts WHERE graded_signal_id = ?", (artifact.graded_signal_id,)
            old = db.execute(find, by).fetchone()
            if old is not None and (old["dag_id"], old["dag_run_id"]) != key[:2]:
                raise StoreError(f"signal artifact {artifact.graded_signal_id} is graded already, by {old['dag_id']} run "
                                 f"{old['dag_run_id']} ({SCORE_TYPE} artifact {old['id']}): a signal is graded once",
                                 status=CONFLICT)
            if old is None:
                db.execute(
                    "INSERT INTO artifacts (dag_id, dag_run_id, symbol, artifact_type, content, created_at, updated_at, "
                    "graded_signal_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, content, now, now, artifact.graded_signal_id),
                )
            elif json.loads(old["content"]) != artifact.content:
                _keep_revision(db, old, now, "content")
                db.execute(
                    "UPDATE artifacts SET content = ?, updated_at = ?, revision = revision + 1 WHERE id = ?", (content, now, old["id"])
                )
            row = db.execute(find, by).fetchone()
        return _artifact(row), old is None

    def set_lineage(self, artifact_id: int, mlflow_run_id: str, mlflow_experiment_id: str) -> Artifact:
        """Fill the lineage, or replace it keeping the old one as a revision."""
        lineage, now = (mlflow_run_id, mlflow_experiment_id), utc_now()
        with self._connect(write=True) as db:
            old = db.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
            if old is None:
                raise NotFoundError(f"no artifact {artifact_id}")
            stored = (old["mlflow_run_id"], old["mlflow_experiment_id"])
            if stored != lineage:
                replaces = stored != (None, None)
                if replaces:
                    _keep_revision(db, old, now, "lineage")
                db.execute(
                    "UPDATE artifacts SET mlflow_run_id = ?, mlflow_experiment_id = ?, updated_at = ?, revision = revision + ? "
                    "WHERE id = ?",
                    (*lineage, now, int(replaces), artifact_id),
                )
            row = db.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return _artifact(row)

    def list_revisions(self, artifact_id: int) -> list[ArtifactRevision]:
        """The replaced versions of an artifact, oldest first."""
        with self._connect() as db:
            if db.execute("SELECT 1 FROM artifacts WHERE id = ?", (artifact_id,)).fetchone() is None:
                raise NotFoundError(f"no artifact {artifact_id}")
            rows = db.execute("SELECT * FROM artifact_revisions WHERE artifact_id = ? ORDER BY revision", (artifact_id,)).fetchall()
        return [ArtifactRevision(**{**dict(r), "content": json.loads(r["content"])}) for r in rows]

    def get_artifact(self, artifact_id: int) -> Artifact:
        with self._connect() as db:
            row = db.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact {artifact_id}")
        return _artifact(row)

    def list_artifacts(
        self,
        *,
        dag_id: str | None = None,
        dag_run_id: str | None = None,
        symbol: str | None = None,
        artifact_type: str | None = None,
    ) -> list[Artifact]:
        filters = {"dag_id": dag_id, "dag_run_id": dag_run_id, "symbol": symbol, "artifact_type": artifact_type}
        clauses = [(f"{column} = ?", value) for column, value in filters.items() if value is not None]
        where = ("WHERE " + " AND ".join(c for c, _ in clauses)) if clauses else ""
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM artifacts {where} ORDER BY id", [v for _, v in clauses]).fetchall()
        return [_artifact(r) for r in rows]


def _create_or_upgrade_artifacts(db: sqlite3.Connection) -> None:
    """The artifacts table as this version keeps it; an older store's table is rebuilt in place, keeping ids.

    Before graded_signal_id, every artifact was unique per (dag_id, dag_run_id, symbol, type), and a
    score was kept under its graded signal's identity; such a score keeps that identity and gets
    its graded signal from ``content.signal.artifact_id``.
    """
    columns = {row["name"] for row in db.execute("PRAGMA table_info(artifacts)")}
    if not columns:
        db.execute(_ARTIFACTS.format(name="artifacts"))
    elif "graded_signal_id" not in columns:
        revision = "revision" if "revision" in columns else "1"  # a store written before revisions were kept
        db.execute(_ARTIFACTS.format(name="artifacts_upgrade"))
        db.execute(
            f"INSERT INTO artifacts_upgrade ({_COLUMNS}, graded_signal_id) SELECT {_COLUMNS.replace('revision', revision)}, "
            f"CASE WHEN artifact_type = '{SCORE_TYPE}' THEN json_extract(content, '$.signal.artifact_id') END FROM artifacts"
        )
        db.execute("DROP TABLE artifacts")
        db.execute("ALTER TABLE artifacts_upgrade RENAME TO artifacts")
    for statement in filter(str.strip, _ARTIFACT_INDEXES.split(";")):
        db.execute(statement)


def _graded_signal(db: sqlite3.Connection, score: ArtifactCreate) -> None:
    """The score's graded signal exists and is the signal its content names."""
    graded = db.execute("SELECT * FROM artifacts WHERE id = ?", (score.graded_signal_id,)).fetchone()
    if graded is None:
        raise StoreError(f"invalid {SCORE_TYPE} artifact: graded_signal_id: no artifact {score.graded_signal_id}",
                         status=UNPROCESSABLE)
    raise_if(graded_signal_mismatch(score, dict(graded)), f"{SCORE_TYPE} artifact")


def _symbol_row(db: sqlite3.Connection, symbol: str) -> sqlite3.Row:
    row = db.execute("SELECT * FROM workflow_symbols WHERE symbol = ?", (symbol,)).fetchone()
    if row is None:
        raise NotFoundError(f"no workflow symbol {symbol}")
    return row


def _link_row(db: sqlite3.Connection, symbol: str, dag_id: str) -> sqlite3.Row:
    link = db.execute("SELECT * FROM workflow_links WHERE symbol_id = ? AND dag_id = ?", (_symbol_row(db, symbol)["id"], dag_id)).fetchone()
    if link is None:
        raise NotFoundError(f"no link from workflow symbol {symbol} to DAG {dag_id}")
    return link


def _link(row: sqlite3.Row) -> WorkflowLink:
    return WorkflowLink(id=row["id"], dag_id=row["dag_id"], is_active=bool(row["is_active"]), config=json.loads(row["config"]), notes=row["notes"])


def _keep_revision(db: sqlite3.Connection, old: sqlite3.Row, now: str, replaced_by: str) -> None:
    db.execute(
        "INSERT INTO artifact_revisions (artifact_id, revision, content, mlflow_run_id, mlflow_experiment_id, "
        "written_at, replaced_at, replaced_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (old["id"], old["revision"], old["content"], old["mlflow_run_id"], old["mlflow_experiment_id"], old["updated_at"], now, replaced_by),
    )


def _artifact(row: sqlite3.Row) -> Artifact:
    return Artifact(**{**dict(row), "content": json.loads(row["content"])})
