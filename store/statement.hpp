// Statement: the one owner of a sqlite3_stmt*. Move-only; in a noexcept destructor it is
// finalized, or, when it came from a StatementCache, reset and handed back for the next use.
// Every SQLite failure becomes hbsd::Error (Busy when another writer holds the lock past the
// busy timeout, Internal otherwise), so callers never see SQLite result codes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace hbsd::store {

class StatementCache;

class Statement {
  public:
    Statement(sqlite3* db, std::string_view sql);
    // From `cache` when it holds an idle statement of that text, else freshly prepared; goes
    // back to the cache when destroyed.
    Statement(sqlite3* db, std::string_view sql, std::shared_ptr<StatementCache> cache);
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();

    // Parameters are 1-based, as in SQLite. Text and blobs are copied (SQLITE_TRANSIENT) so
    // that the caller's buffers may die before step().
    Statement& bind(int index, std::string_view text);
    Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
    Statement& bind(int index, const std::string& text) {
        return bind(index, std::string_view(text));
    }
    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, int value) { return bind(index, std::int64_t{value}); }
    Statement& bind(int index, bool value) { return bind(index, std::int64_t{value ? 1 : 0}); }
    Statement& bind_blob(int index, std::span<const unsigned char> bytes);
    Statement& bind_null(int index);
    Statement& bind(int index, const std::optional<std::string>& text);

    // True while a row is available; false once done. Throws on any error.
    bool step();
    // Runs a statement that returns no rows (or whose rows do not matter).
    void run();
    void reset() noexcept;

    bool is_null(int column) const;
    std::string text(int column) const;
    std::optional<std::string> optional_text(int column) const;
    std::int64_t int64(int column) const;
    std::vector<unsigned char> blob(int column) const;

  private:
    void release() noexcept;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* stmt_ = nullptr;
    std::shared_ptr<StatementCache> cache_;
};

// Idle prepared statements of one connection, one per SQL text. Preparing is a good part of
// a store call's CPU time (SQLite parses and plans the text each time: bench_registry showed
// it in every lookup and in the commit), and the store's statements are a small fixed set.
// Shared with the Statements it hands out, so that a Statement outliving its Database only
// finalizes. Thread-safe; the store serialises use of the connection anyway.
class StatementCache {
  public:
    ~StatementCache();
    sqlite3_stmt* take(std::string_view sql) noexcept;
    // Takes ownership: keeps `stmt` (already reset) if none of its text is idle, else
    // finalizes it.
    void give_back(sqlite3_stmt* stmt) noexcept;
    // Finalizes every idle statement (before the connection closes).
    void clear() noexcept;

  private:
    std::mutex mu_;
    std::unordered_map<std::string, sqlite3_stmt*> idle_;
    bool closed_ = false;
};

// Turns an SQLite result code into hbsd::Error and throws it.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view what);

}  // namespace hbsd::store
