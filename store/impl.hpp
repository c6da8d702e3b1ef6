// The store's private state and the helpers its parts share inside one transaction.
// Not installed, not for callers outside store/.
#pragma once

#include <memory>
#include <mutex>

#include "store/checkpointer.hpp"
#include "store/database.hpp"
#include "store/store.hpp"

namespace hbsd::store {

struct Store::Impl {
    Impl(Database d, std::filesystem::path p)
        : checkpointer(std::make_unique<Checkpointer>(p, mutex)),
          db(std::move(d)),
          path(std::move(p)) {
        checkpointer->attach(db.handle());
    }
    // One connection serves every thread; a transaction spans several statements, so calls
    // are serialised here rather than relying on SQLite's per-call mutex.
    // Recursive: run_audited holds it around calls that take it again.
    mutable std::recursive_mutex mutex;
    // Declared before db, so destroyed after it: no commit can reach a gone hook, and the
    // checkpointer's connection, closing last, checkpoints and removes the WAL.
    std::unique_ptr<Checkpointer> checkpointer;
    Database db;
    std::filesystem::path path;  // for long reads on a connection of their own
};

namespace detail {

// Each runs inside the caller's transaction and does not commit.
std::int64_t audit_append(Database& db, const AuditInput& in);
std::string archive_put(Database& db, std::span<const unsigned char> document);
std::optional<RecordState> record_find(Database& db, std::string_view record);
void record_create(Database& db, std::string_view record, std::string_view school,
                   const std::string& time);
void record_event(Database& db, std::string_view record, const std::string& time,
                  std::string_view event, std::string_view detail);
// True when the year was newly marked issued.
bool record_issue_year(Database& db, std::string_view record, std::string_view year,
                       const std::string& time);
std::optional<StoredResult> idempotency_find(Database& db, std::int64_t uid,
                                             std::string_view request_id);

}  // namespace detail
}  // namespace hbsd::store
