// WAL checkpoints run on the Checkpointer's thread, not inside the commits of the connection
// it is attached to (store/checkpointer.hpp), and the WAL stays bounded meanwhile.
#include "tests/support/catch.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "store/checkpointer.hpp"
#include "store/database.hpp"
#include "store/store.hpp"
#include "support.hpp"

using namespace hbsd::store;
namespace fs = std::filesystem;

namespace {

std::uintmax_t wal_size(const fs::path& db) {
    std::error_code ec;
    const auto n = fs::file_size(db.string() + "-wal", ec);
    return ec ? 0 : n;
}

// A writing connection used as Store uses its own: every write transaction under one lock.
struct Writer {
    explicit Writer(const char* setup = "") : path(dir / "t.db"), db(Database::open(path)) {
        db.exec(setup);
        db.exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
        auto st = db.prepare("PRAGMA page_size");
        REQUIRE(st.step());
        page = st.int64(0);
        blob.assign(static_cast<std::size_t>(8 * page), 'x');  // ~9 WAL frames a commit
    }
    // n commits, with `gap` between them as the signing work of a request would leave.
    void insert(int n, std::chrono::microseconds gap = std::chrono::microseconds(100)) {
        for (int i = 0; i < n; ++i) {
            {
                std::lock_guard hold(lock);
                auto st = db.prepare("INSERT INTO t(v) VALUES (?1)");
                st.bind_blob(1, {reinterpret_cast<const unsigned char*>(blob.data()), blob.size()});
                st.run();
            }
            peak = std::max(peak, wal_size(path));
            std::this_thread::sleep_for(gap);
        }
    }
    std::uintmax_t inline_bound() const {
        return static_cast<std::uintmax_t>(Checkpointer::kInlinePages * page);
    }
    hbsd::test::TempDir dir;
    fs::path path;
    std::recursive_mutex lock;
    Database db;
    std::int64_t page = 0;
    std::string blob;
    std::uintmax_t peak = 0;
};

// A Writer with a Checkpointer attached, as Store sets its connection up.
struct Checkpointed {
    Checkpointed() : checkpointer(w.path, w.lock) { checkpointer.attach(w.db.handle()); }
    Writer w;
    Checkpointer checkpointer;
};

constexpr int kCommits = 1100;  // ~10,000 frames: past the inline bound if nothing copies them

}  // namespace

TEST_CASE("commits past the threshold are checkpointed by the thread and the WAL stays bounded",
          "[store]") {
    Checkpointed fixture;
    auto& [w, checkpointer] = fixture;
    w.insert(kCommits);
    CHECK(checkpointer.background_runs() >= 1);
    CHECK(checkpointer.inline_runs() == 0);  // no commit paid for a checkpoint
    // The WAL started over from its top again and again: it never held much past a wake-up.
    CHECK(w.peak < w.inline_bound() / 2);

    // Every row is there and the file is sound, read through a fresh connection.
    Database other = Database::open(w.path);
    auto count = other.prepare("SELECT count(*) FROM t");
    REQUIRE(count.step());
    CHECK(count.int64(0) == kCommits);
    auto check = other.prepare("PRAGMA integrity_check");
    REQUIRE(check.step());
    CHECK(check.text(0) == "ok");
}

TEST_CASE("without the checkpointer the same commits grow the WAL past the inline bound",
          "[store]") {
    // The control for the test above: the bound is the checkpointer's doing, not the load's.
    Writer w("PRAGMA wal_autocheckpoint=0");
    w.insert(kCommits);
    CHECK(w.peak > w.inline_bound());
}

TEST_CASE("a reader pinning old frames makes the committing connection checkpoint inline",
          "[store]") {
    Checkpointed fixture;
    auto& [w, checkpointer] = fixture;
    w.insert(10);
    {
        // A long read (e.g. VerifyAudit) keeps its snapshot: nothing after it can be
        // backfilled and the WAL cannot restart, however often the thread runs.
        Database reader = Database::open(w.path);
        ReadTransaction snapshot(reader);
        auto st = reader.prepare("SELECT count(*) FROM t");
        REQUIRE(st.step());
        CHECK(st.int64(0) == 10);
        w.insert(kCommits, std::chrono::microseconds(0));
        CHECK(checkpointer.inline_runs() >= 1);
    }
    // With the reader gone the thread catches up and the WAL starts over from its top.
    // (wal_checkpoint's row: busy, frames in the WAL, frames checkpointed.)
    bool restarted = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!restarted && std::chrono::steady_clock::now() < deadline) {
        w.insert(1, std::chrono::milliseconds(10));
        std::lock_guard hold(w.lock);
        auto st = w.db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
        restarted = st.step() && st.int64(1) == st.int64(2) && st.int64(1) < 100;
    }
    CHECK(restarted);
}

TEST_CASE("closing the store checkpoints and removes the WAL", "[store]") {
    hbsd::test::TempDir dir;
    const fs::path path = dir / "hbsd.db";
    {
        Store store = Store::open(path);
        for (int i = 0; i < 20; ++i)
            store.register_certificate(hbsd::test::make_cert_der("GV " + std::to_string(i), i + 1),
                                       CertificateKind::person, "79000001",
                                       "P" + std::to_string(i));
        CHECK(fs::exists(path.string() + "-wal"));
    }
    CHECK_FALSE(fs::exists(path.string() + "-wal"));
    Store again = Store::open(path);
    CHECK(again.list_certificates().size() == 20);
}
