#include "store/statement.hpp"

#include <sqlite3.h>

#include <climits>
#include <utility>

#include "protocol/error.hpp"

namespace hbsd::store {

void throw_sqlite(sqlite3* db, int rc, std::string_view what) {
    const int primary = rc & 0xff;
    // Another process or connection holds the write lock longer than busy_timeout: the caller
    // may retry, so this is Busy rather than an internal failure.
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw Error::busy(250);
    std::string detail = "sqlite: ";
    detail += what;
    detail += ": ";
    detail += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    throw Error::internal(std::move(detail));
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
    if (sql.size() > INT_MAX) throw Error::internal("sqlite: statement too long");
    const int rc =
        sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, sql);
}

Statement::Statement(sqlite3* db, std::string_view sql, std::shared_ptr<StatementCache> cache)
    : db_(db), cache_(std::move(cache)) {
    if (cache_) stmt_ = cache_->take(sql);
    if (stmt_ != nullptr) return;
    if (sql.size() > INT_MAX) throw Error::internal("sqlite: statement too long");
    // PERSISTENT: the statement is meant to be kept and reused.
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      cache_ ? SQLITE_PREPARE_PERSISTENT : 0, &stmt_, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, sql);
}

Statement::Statement(Statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      stmt_(std::exchange(other.stmt_, nullptr)),
      cache_(std::move(other.cache_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
    if (this != &other) {
        release();
        db_ = std::exchange(other.db_, nullptr);
        stmt_ = std::exchange(other.stmt_, nullptr);
        cache_ = std::move(other.cache_);
    }
    return *this;
}

Statement::~Statement() {
    release();
}

void Statement::release() noexcept {
    if (stmt_ == nullptr) return;
    if (cache_) {
        // Reset ends a read that was not stepped to the end, which would otherwise hold its
        // snapshot (and a WAL checkpoint) for as long as the statement sits in the cache.
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
        cache_->give_back(std::exchange(stmt_, nullptr));
    } else {
        sqlite3_finalize(std::exchange(stmt_, nullptr));
    }
}

StatementCache::~StatementCache() {
    clear();
}

sqlite3_stmt* StatementCache::take(std::string_view sql) noexcept {
    std::lock_guard lock(mu_);
    // Heterogeneous lookup needs C++20 transparent hashing; the key copy is small.
    auto it = idle_.find(std::string(sql));
    if (it == idle_.end() || it->second == nullptr) return nullptr;
    return std::exchange(it->second, nullptr);
}

void StatementCache::give_back(sqlite3_stmt* stmt) noexcept {
    try {
        std::lock_guard lock(mu_);
        const char* sql = sqlite3_sql(stmt);
        if (!closed_ && sql != nullptr) {
            sqlite3_stmt*& slot = idle_[sql];
            if (slot == nullptr) {
                slot = stmt;
                return;
            }
        }
    } catch (...) {
        // Out of memory for the map: finalize instead of caching.
    }
    sqlite3_finalize(stmt);
}

void StatementCache::clear() noexcept {
    std::lock_guard lock(mu_);
    for (auto& [sql, stmt] : idle_) sqlite3_finalize(stmt);
    idle_.clear();
    closed_ = true;
}

Statement& Statement::bind(int index, std::string_view text) {
    const int rc =
        sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind text");
    return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
    const int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind int");
    return *this;
}

Statement& Statement::bind_blob(int index, std::span<const unsigned char> bytes) {
    // A zero-length blob must stay a blob, not NULL: pass a non-null pointer.
    static const unsigned char empty = 0;
    const void* data = bytes.empty() ? &empty : bytes.data();
    const int rc = sqlite3_bind_blob64(stmt_, index, data, bytes.size(), SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind blob");
    return *this;
}

Statement& Statement::bind_null(int index) {
    const int rc = sqlite3_bind_null(stmt_, index);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind null");
    return *this;
}

Statement& Statement::bind(int index, const std::optional<std::string>& text) {
    return text ? bind(index, std::string_view(*text)) : bind_null(index);
}

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    // Keep the statement reusable after a constraint failure the caller may translate.
    const std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
    sqlite3_reset(stmt_);
    throw_sqlite(db_, rc, sql);
}

void Statement::run() {
    while (step()) {
    }
}

void Statement::reset() noexcept {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string Statement::text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    const int n = sqlite3_column_bytes(stmt_, column);
    if (!p) return {};
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

std::optional<std::string> Statement::optional_text(int column) const {
    if (is_null(column)) return std::nullopt;
    return text(column);
}

std::int64_t Statement::int64(int column) const {
    return sqlite3_column_int64(stmt_, column);
}

std::vector<unsigned char> Statement::blob(int column) const {
    const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(stmt_, column));
    const int n = sqlite3_column_bytes(stmt_, column);
    if (!p || n <= 0) return {};
    return std::vector<unsigned char>(p, p + n);
}

}  // namespace hbsd::store
