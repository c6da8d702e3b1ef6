// Checkpointer: moves WAL checkpoints off the commit path.
//
// SQLite's automatic checkpoint runs inside the COMMIT that pushes the WAL past 1000 pages:
// that one request copies every page back into the database and fsyncs it, a tail latency
// several times an ordinary signature's (a school-seal record is ~70 KB, so every ~50th seal
// paid for it). Here the writer's connection has no automatic checkpoint; its WAL hook wakes a
// thread with a connection of its own, which copies the WAL back with PASSIVE checkpoints
// (they never wait for or block a writer) while requests keep committing.
// A WAL only starts over from its top when a write begins with every frame copied back, which
// a busy writer never lets a concurrent checkpoint reach: so once what is left is small
// (kTailFrames), the thread takes the writer's lock for one last short pass. A commit then
// waits for at most that pass, never for a whole checkpoint.
// Bounds, if the thread cannot keep up or a long reader pins old frames: past kInlinePages the
// committing connection checkpoints itself, as SQLite would have, and the last connection to
// close checkpoints and removes the WAL.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <thread>

#include "store/database.hpp"

struct sqlite3;

namespace hbsd::store {

class Checkpointer {
  public:
    // SQLite's default autocheckpoint threshold: the WAL size at which the thread is woken.
    static constexpr int kPages = 1000;
    // The committing connection checkpoints itself beyond this (the thread is behind).
    static constexpr int kInlinePages = 8 * kPages;
    // Frames left after a pass that the thread copies holding the writer's lock.
    static constexpr int kTailFrames = 64;

    // Opens its own connection to `path` and starts the thread. `writer` is the lock every
    // write transaction of the attached connection holds (Store's mutex); it must outlive this.
    Checkpointer(const std::filesystem::path& path, std::recursive_mutex& writer);
    Checkpointer(const Checkpointer&) = delete;
    Checkpointer& operator=(const Checkpointer&) = delete;
    // Stops and joins the thread, then closes its connection.
    ~Checkpointer();

    // Turns `writer`'s automatic checkpoint off and installs the WAL hook that hands
    // checkpoints to this object. `writer` must be closed before this is destroyed.
    void attach(sqlite3* writer) noexcept;

    // Checkpoints run by the thread and by committing connections (for the tests).
    std::uint64_t background_runs() const noexcept { return background_.load(); }
    std::uint64_t inline_runs() const noexcept { return inline_.load(); }

  private:
    static int on_commit(void* self, sqlite3* db, const char* schema, int pages) noexcept;
    void run() noexcept;
    void catch_up() noexcept;

    Database db_;
    std::recursive_mutex& writer_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool pending_ = false;
    bool stop_ = false;
    std::atomic<std::uint64_t> background_{0};
    std::atomic<std::uint64_t> inline_{0};
    std::thread thread_;  // last: starts once everything it reads exists
};

}  // namespace hbsd::store
