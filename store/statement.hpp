// Statement: the one owner of a sqlite3_stmt*. Move-only; finalized in a noexcept destructor.
// Every SQLite failure becomes hbsd::Error (Busy when another writer holds the lock past the
// busy timeout, Internal otherwise), so callers never see SQLite result codes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace hbsd::store {

class Statement {
  public:
    Statement(sqlite3* db, std::string_view sql);
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
    sqlite3* db_ = nullptr;
    sqlite3_stmt* stmt_ = nullptr;
};

// Turns an SQLite result code into hbsd::Error and throws it.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view what);

}  // namespace hbsd::store
