#include "store/migrations.hpp"

#include <array>
#include <string>

#include "protocol/error.hpp"
#include "store/database.hpp"

namespace hbsd::store {
namespace {

// STRICT tables make SQLite refuse a value of the wrong type instead of storing it anyway.
// Optional text columns of the assignments key are '' rather than NULL because NULLs are
// distinct in a PRIMARY KEY / UNIQUE constraint and would allow duplicate assignments.
constexpr const char* kV1 = R"sql(
CREATE TABLE certificates (
    fingerprint   TEXT PRIMARY KEY CHECK (length(fingerprint) = 64),
    der           BLOB NOT NULL,
    subject       TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    serial        TEXT NOT NULL,
    not_before    TEXT NOT NULL,
    not_after     TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('person', 'school')),
    school        TEXT NOT NULL,
    person        TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'revoked')),
    revoke_reason TEXT,
    revoked_at    TEXT,
    registered_at TEXT NOT NULL,
    CHECK ((kind = 'person') = (person IS NOT NULL))
) STRICT;
CREATE INDEX certificates_by_school ON certificates (school);

CREATE TABLE assignments (
    school  TEXT NOT NULL,
    year    TEXT NOT NULL,
    role    TEXT NOT NULL CHECK (role IN ('subject_teacher', 'homeroom_teacher', 'principal')),
    person  TEXT NOT NULL,
    class   TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (school, year, role, person, class, subject)
) STRICT, WITHOUT ROWID;

CREATE TABLE year_locks (
    school    TEXT NOT NULL,
    year      TEXT NOT NULL,
    locked_at TEXT NOT NULL,
    PRIMARY KEY (school, year)
) STRICT, WITHOUT ROWID;

CREATE TABLE records (
    record      TEXT PRIMARY KEY,
    school      TEXT NOT NULL,
    state       TEXT NOT NULL
                CHECK (state IN ('active', 'revocation_requested', 'revoked', 'transferred')),
    -- the state to return to when a revocation request is refused
    prior_state TEXT CHECK (prior_state IN ('active', 'transferred')),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE record_years (
    record    TEXT NOT NULL REFERENCES records (record),
    year      TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    PRIMARY KEY (record, year)
) STRICT, WITHOUT ROWID;

CREATE TABLE record_events (
    id     INTEGER PRIMARY KEY,
    record TEXT NOT NULL REFERENCES records (record),
    time   TEXT NOT NULL,
    event  TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX record_events_by_record ON record_events (record, id);

CREATE TABLE archive (
    sha256    TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    document  BLOB NOT NULL,
    stored_at TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    seq             INTEGER PRIMARY KEY,
    time            TEXT NOT NULL,
    uid             INTEGER NOT NULL,
    method          TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    record          TEXT,
    role            TEXT,
    fingerprint     TEXT,
    document_before TEXT,
    document_after  TEXT,
    detail          TEXT,
    prev_hash       TEXT NOT NULL,
    entry_hash      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_document_after ON audit (document_after);

CREATE TABLE signatures (
    signature_value_sha TEXT PRIMARY KEY,
    audit_seq           INTEGER NOT NULL REFERENCES audit (seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE idempotency (
    uid          INTEGER NOT NULL,
    request_id   TEXT NOT NULL,
    method       TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    result       TEXT NOT NULL,
    audit_seq    INTEGER NOT NULL REFERENCES audit (seq),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (uid, request_id)
) STRICT, WITHOUT ROWID;

-- Append-only by construction: a bug (or a stray admin statement) cannot rewrite history.
-- Someone with the file can drop these; the hash chain is what detects that.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER archive_no_update BEFORE UPDATE ON archive
BEGIN SELECT RAISE(ABORT, 'archive is append-only'); END;
CREATE TRIGGER archive_no_delete BEFORE DELETE ON archive
BEGIN SELECT RAISE(ABORT, 'archive is append-only'); END;
)sql";

constexpr std::array kMigrations{kV1};

int user_version(Database& db) {
    auto st = db.prepare("PRAGMA user_version");
    return st.step() ? static_cast<int>(st.int64(0)) : 0;
}

}  // namespace

int latest_schema_version() noexcept {
    return static_cast<int>(kMigrations.size());
}

void migrate(Database& db) {
    // Checked before and inside the transaction: the common case (up to date) takes no
    // write lock, and a concurrent opener that migrated first is seen after BEGIN IMMEDIATE.
    if (user_version(db) == latest_schema_version()) return;
    Transaction tx(db);
    const int current = user_version(db);
    if (current > latest_schema_version())
        throw Error::internal("store: schema version " + std::to_string(current) +
                              " is newer than this build's " +
                              std::to_string(latest_schema_version()));
    for (int v = current; v < latest_schema_version(); ++v) db.exec(kMigrations[v]);
    // PRAGMA takes no bound parameters; the value is our own integer.
    db.exec(("PRAGMA user_version=" + std::to_string(latest_schema_version())).c_str());
    tx.commit();
}

}  // namespace hbsd::store
