// Database: the one owner of a sqlite3* connection. Move-only; closed in a noexcept destructor.
// Transaction: BEGIN IMMEDIATE on construction, ROLLBACK in the destructor unless commit()ed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include "store/statement.hpp"

struct sqlite3;

namespace hbsd::store {

class Database {
  public:
    // Opens (creating if needed) the file and sets the connection up for durability:
    // WAL, synchronous=FULL, foreign keys, busy timeout, defensive mode, untrusted schema.
    static Database open(const std::filesystem::path& path);

    Database(Database&& other) noexcept;
    Database& operator=(Database&& other) noexcept;
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    ~Database();

    // A statement of this connection, reused from earlier calls with the same text.
    Statement prepare(std::string_view sql) { return Statement(db_, sql, cache_); }
    // Runs one or more statements without results (schema, pragmas).
    void exec(const char* sql);
    std::int64_t changes() const noexcept;
    sqlite3* handle() const noexcept { return db_; }

  private:
    friend class Transaction;
    explicit Database(sqlite3* db);
    sqlite3* db_ = nullptr;
    std::shared_ptr<StatementCache> cache_;
    // Open write transactions on this connection: an inner one joins the outer (see
    // Transaction), so that Store::run_audited can wrap a mutating call and its audit entry.
    int tx_depth_ = 0;
};

class Transaction {
  public:
    // IMMEDIATE takes the write lock up front, so two writers never both read the audit head
    // and then race to append after it.
    explicit Transaction(Database& db);
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction();

    // With synchronous=FULL the commit is on disk (WAL fsynced) when this returns. A nested
    // transaction commits nothing itself: the outermost one decides.
    void commit();

  private:
    Database& db_;
    bool nested_ = false;
    bool done_ = false;
};

// A read snapshot (BEGIN DEFERRED): several SELECTs see one consistent state while writers in
// other processes go on. Always ended (ROLLBACK, which for a reader changes nothing).
class ReadTransaction {
  public:
    explicit ReadTransaction(Database& db);
    ReadTransaction(const ReadTransaction&) = delete;
    ReadTransaction& operator=(const ReadTransaction&) = delete;
    ~ReadTransaction();

  private:
    Database& db_;
};

}  // namespace hbsd::store
