#include "store/database.hpp"

#include <sqlite3.h>

#include <string>
#include <utility>

#include "protocol/error.hpp"

namespace hbsd::store {

namespace {

// Long enough to ride out a checkpoint or another process's commit, short enough that a stuck
// writer turns into a Busy reply rather than a hung request.
constexpr int kBusyTimeoutMs = 5000;

std::string pragma_text(Database& db, const char* sql) {
    auto st = db.prepare(sql);
    return st.step() ? st.text(0) : std::string{};
}

}  // namespace

Database Database::open(const std::filesystem::path& path) {
    sqlite3* raw = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX |
                      SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    Database db(raw);  // owns the handle even when open failed (SQLite allocates one anyway)
    if (rc != SQLITE_OK) throw_sqlite(raw, rc, "open " + path.string());

    sqlite3_busy_timeout(db.db_, kBusyTimeoutMs);
    // Defensive mode forbids writable_schema and other ways an SQL string could corrupt the
    // file; trusted_schema off keeps a planted view or trigger from calling functions.
    sqlite3_db_config(db.db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db.db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);

    if (pragma_text(db, "PRAGMA journal_mode=WAL") != "wal")
        throw Error::internal("sqlite: cannot switch " + path.string() + " to WAL");
    db.exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (pragma_text(db, "PRAGMA foreign_keys") != "1")
        throw Error::internal("sqlite: foreign keys unsupported");
    return db;
}

Database::Database(sqlite3* db) : db_(db) {
    try {
        cache_ = std::make_shared<StatementCache>();
    } catch (...) {
        sqlite3_close_v2(db_);
        throw;
    }
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      cache_(std::move(other.cache_)),
      tx_depth_(std::exchange(other.tx_depth_, 0)) {}

Database& Database::operator=(Database&& other) noexcept {
    if (this != &other) {
        if (cache_) cache_->clear();
        sqlite3_close_v2(db_);
        db_ = std::exchange(other.db_, nullptr);
        cache_ = std::move(other.cache_);
        tx_depth_ = std::exchange(other.tx_depth_, 0);
    }
    return *this;
}

// The cache's idle statements go first; close_v2 then defers the close until any statement
// still out there is finalized, so destruction order cannot leak or crash.
Database::~Database() {
    if (cache_) cache_->clear();
    sqlite3_close_v2(db_);
}

void Database::exec(const char* sql) {
    char* msg = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
        std::string text = msg ? msg : "";
        sqlite3_free(msg);
        throw_sqlite(db_, rc, text.empty() ? std::string_view(sql) : std::string_view(text));
    }
}

std::int64_t Database::changes() const noexcept {
    return sqlite3_changes64(db_);
}

Transaction::Transaction(Database& db) : db_(db), nested_(db.tx_depth_ > 0) {
    if (!nested_) db_.exec("BEGIN IMMEDIATE");
    ++db_.tx_depth_;
}

Transaction::~Transaction() {
    if (done_) return;
    --db_.tx_depth_;
    // A failed inner part fails the whole: the exception reaches the outer transaction, whose
    // destructor rolls everything back.
    if (nested_) return;
    // Nothing useful can be done if ROLLBACK fails in a destructor; SQLite rolls the
    // transaction back itself when the connection closes or the next BEGIN fails.
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    if (!nested_) db_.exec("COMMIT");
    done_ = true;
    --db_.tx_depth_;
}

ReadTransaction::ReadTransaction(Database& db) : db_(db) {
    db_.exec("BEGIN DEFERRED");
}

ReadTransaction::~ReadTransaction() {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

}  // namespace hbsd::store
