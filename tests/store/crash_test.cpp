// A crash at any point leaves either the whole signing recorded or none of it (DESIGN.md):
// a child process commits signatures in a loop and is killed with SIGKILL at random moments;
// afterwards every idempotency row has its audit entry and archived document, every signing
// audit entry has its idempotency row and archive copy, and the chain verifies.
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tests/support/catch.hpp"

#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <random>
#include <set>
#include <thread>

#include "protocol/hex.hpp"
#include "store/store.hpp"
#include "support.hpp"

using namespace hbsd;
using namespace hbsd::store;

namespace {

[[noreturn]] void child_loop(const std::filesystem::path& path, int round) {
    try {
        // Opened in the child: an SQLite connection must never cross fork().
        auto s = Store::open(path);
        for (long i = 0;; ++i) {
            const std::string id = std::to_string(round) + "-" + std::to_string(i);
            SignatureCommit c;
            c.uid = 1000;
            c.request_id = id;
            c.request_hash = sha256_hex("request " + id);
            c.document_before_sha = sha256_hex("before " + id);
            // Big enough that the WAL write is not one page, so kills land mid-write too.
            std::string doc =
                "<HocBa id=\"" + id + "\">" + std::string(8192 + i % 4096, 'x') + "</HocBa>";
            c.document_after.assign(doc.begin(), doc.end());
            c.record = "94000123-2024-" + std::to_string(i % 7);
            c.school = "94000123";
            c.year = "2024-2025";
            c.role = i % 5 == 4 ? "school" : "subject_teacher";
            c.issues_year = i % 5 == 4;
            c.fingerprint = sha256_hex("cert");
            c.signature_value_sha = sha256_hex("sig " + id);
            c.result = boost::json::object{{"id", id}};
            s.commit_signature(c);
        }
    } catch (...) {
        _exit(3);
    }
}

std::vector<std::vector<std::string>> rows(const std::filesystem::path& path, const char* sql) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK);
    std::vector<std::vector<std::string>> out;
    while (sqlite3_step(st) == SQLITE_ROW) {
        std::vector<std::string> row;
        for (int i = 0; i < sqlite3_column_count(st); ++i) {
            const auto* t = sqlite3_column_text(st, i);
            row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
        }
        out.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

}  // namespace

TEST_CASE("SIGKILL during commit_signature loses nothing half-done", "[store][integration]") {
    test::TempDir dir;
    const auto path = dir / "hbsd.db";
    { Store::open(path); }  // schema first, so a kill during migration is not what we test
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> delay_ms(5, 120);

    for (int round = 0; round < 20; ++round) {
        const pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child_loop(path, round);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
        kill(pid, SIGKILL);
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        // Killed, not exited on an error of its own.
        REQUIRE(WIFSIGNALED(status));

        // Recovery happens on the next open; a store must open and verify after every kill.
        auto s = Store::open(path);
        REQUIRE(s.verify_audit().ok);
    }

    auto s = Store::open(path);
    const auto v = s.verify_audit();
    CHECK(v.ok);
    INFO("audit entries after 20 kills: " << v.entries);
    CHECK(v.entries > 0);

    // Every idempotency row -> its audit entry -> its archived document (and the index).
    const auto orphans_idem = rows(path,
                                   "SELECT i.request_id FROM idempotency i "
                                   "LEFT JOIN audit a ON a.seq = i.audit_seq "
                                   "LEFT JOIN archive ar ON ar.sha256 = a.document_after "
                                   "WHERE a.seq IS NULL OR ar.sha256 IS NULL");
    CHECK(orphans_idem.empty());
    // Every signing audit entry -> an idempotency row, an archive copy, a signature index row.
    const auto orphans_audit = rows(path,
                                    "SELECT a.seq FROM audit a "
                                    "LEFT JOIN idempotency i ON i.audit_seq = a.seq "
                                    "LEFT JOIN archive ar ON ar.sha256 = a.document_after "
                                    "LEFT JOIN signatures s ON s.audit_seq = a.seq "
                                    "WHERE i.audit_seq IS NULL OR ar.sha256 IS NULL "
                                    "OR s.audit_seq IS NULL");
    CHECK(orphans_audit.empty());
    // Every archived document was produced by an audit entry (no copy without its signing).
    const auto orphans_archive = rows(path,
                                      "SELECT ar.sha256 FROM archive ar "
                                      "WHERE NOT EXISTS (SELECT 1 FROM audit a "
                                      "WHERE a.document_after = ar.sha256)");
    CHECK(orphans_archive.empty());
    // Issued years only where a seal signing committed.
    const auto orphans_years = rows(path,
                                    "SELECT y.record FROM record_years y WHERE NOT EXISTS "
                                    "(SELECT 1 FROM audit a WHERE a.record = y.record "
                                    "AND a.role = 'school')");
    CHECK(orphans_years.empty());

    const auto counts = rows(path,
                             "SELECT (SELECT count(*) FROM idempotency), "
                             "(SELECT count(*) FROM audit), (SELECT count(*) FROM archive)");
    REQUIRE(counts.size() == 1);
    CHECK(counts[0][0] == counts[0][1]);
    CHECK(counts[0][1] == counts[0][2]);

    // Each stored result replays with its document.
    const auto some = rows(path, "SELECT request_id FROM idempotency ORDER BY random() LIMIT 20");
    for (const auto& row : some) {
        auto stored = s.lookup(1000, row[0]);
        REQUIRE(stored);
        CHECK(stored->result.at("id").as_string() == row[0]);
        CHECK_FALSE(stored->document.empty());
    }
}
