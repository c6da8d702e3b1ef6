#include "store/checkpointer.hpp"

#include <sqlite3.h>

namespace hbsd::store {

Checkpointer::Checkpointer(const std::filesystem::path& path, std::recursive_mutex& writer)
    : db_(Database::open(path)), writer_(writer), thread_([this] { run(); }) {}

Checkpointer::~Checkpointer() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void Checkpointer::attach(sqlite3* writer) noexcept {
    // sqlite3_wal_hook replaces the hook that wal_autocheckpoint installs, and the other way
    // round: setting it last is what turns the automatic checkpoint off.
    sqlite3_wal_hook(writer, &Checkpointer::on_commit, this);
}

// Called by SQLite after each commit of an attached connection, with the WAL's size in pages.
// Whatever it returns is reported as the COMMIT's result although the commit already happened,
// so it always answers SQLITE_OK: a checkpoint that could not run now runs later.
int Checkpointer::on_commit(void* self, sqlite3* db, const char* schema, int pages) noexcept {
    auto* c = static_cast<Checkpointer*>(self);
    if (pages >= kInlinePages) {
        if (sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr) ==
            SQLITE_OK)
            c->inline_.fetch_add(1);
    } else if (pages >= kPages) {
        {
            std::lock_guard lock(c->mutex_);
            c->pending_ = true;
        }
        c->wake_.notify_one();
    }
    return SQLITE_OK;
}

void Checkpointer::run() noexcept {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return pending_ || stop_; });
        if (stop_) return;
        pending_ = false;
        lock.unlock();
        catch_up();
        lock.lock();
    }
}

// PASSIVE copies what no reader still needs and never waits on the writer. SQLITE_BUSY
// (another checkpoint running) and any other failure are left to the next wake-up or to the
// inline bound.
void Checkpointer::catch_up() noexcept {
    constexpr int kPasses = 8;  // each copies what the last one left: a shrinking tail
    for (int pass = 0; pass < kPasses; ++pass) {
        int frames = 0, copied = 0;
        if (sqlite3_wal_checkpoint_v2(db_.handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &frames,
                                      &copied) != SQLITE_OK)
            return;
        background_.fetch_add(1);
        if (frames - copied > kTailFrames) continue;
        // The last few frames, with no write transaction open meanwhile: the next write then
        // starts the WAL over. (Without the lock, by the time a pass ends the next write has
        // begun, and it only restarts the WAL if it began with every frame copied.)
        std::lock_guard hold(writer_);
        if (sqlite3_wal_checkpoint_v2(db_.handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                      nullptr) == SQLITE_OK)
            background_.fetch_add(1);
        return;
    }
}

}  // namespace hbsd::store
