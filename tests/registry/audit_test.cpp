// The audit log through the real daemon: chain verification, an attacker's edit of one row in
// the SQLite file (trigger dropped first) found at that row, idempotent retries from the store
// across a restart, and the archive copy of every signed output.
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"
#include "world.hpp"

#include <sqlite3.h>

using namespace hbsd;
using namespace hbsd::test;
namespace json = boost::json;

namespace {

// One sqlite3 connection, closed on scope exit.
class Sqlite3Db {
  public:
    explicit Sqlite3Db(const fs::path& file) {
        if (sqlite3_open(file.c_str(), &db_) != SQLITE_OK)
            throw std::runtime_error("sqlite3_open " + file.string());
    }
    Sqlite3Db(const Sqlite3Db&) = delete;
    Sqlite3Db& operator=(const Sqlite3Db&) = delete;
    ~Sqlite3Db() { sqlite3_close(db_); }
    void exec(const std::string& sql) {
        char* err = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            std::string m = err ? err : "?";
            sqlite3_free(err);
            throw std::runtime_error(sql + ": " + m);
        }
    }

  private:
    sqlite3* db_ = nullptr;
};

}  // namespace

TEST_CASE("audit: one edited row in the file is found at that row; retries survive a restart") {
    TempDir state("hbsd-regstate-");
    DaemonOptions o;
    o.with_registry();
    o.state_dir = state.path().string();
    json::object first;
    std::int64_t tampered = 0;
    json::object request;
    {
        Daemon d(o);
        auto c = d.client();
        enrol_all(c);
        const auto session = open_session(d, c);
        request = sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(),
                              std::string("TOAN"));
        request["request_id"] = "req-1";
        first = c.call(M("Sign"), request);
        // The same id again: the stored first result, nothing signed twice.
        auto again = c.call(M("Sign"), request);
        CHECK(again.at("document") == first.at("document"));
        CHECK(again.at("audit_seq") == first.at("audit_seq"));
        // The same id for a different request is refused.
        auto other = request;
        other["document"] = fixture_student(2);
        CHECK(refusal([&] { c.call(M("Sign"), other); }) == "InvalidParameter");

        auto ok = c.call(M("VerifyAuditLog"));
        CHECK(ok.at("ok").as_bool());
        CHECK(ok.at("first_bad").is_null());
        const auto n = ok.at("entries").as_int64();
        CHECK(n > 30);
        // Paging.
        auto page = c.call(M("GetAuditLog"), {{"after", 5}, {"limit", 3}}).at("entries").as_array();
        REQUIRE(page.size() == 3);
        CHECK(page[0].at("seq").as_int64() == 6);
        CHECK(page[1].at("prev_hash") == page[0].at("entry_hash"));
        tampered = n / 2;
        CHECK(d.terminate() == 0);
    }
    {
        // An attacker with access to the file: the append-only trigger does not stop them.
        Sqlite3Db db(state.path() / "hbsd.db");
        db.exec("DROP TRIGGER audit_no_update");
        db.exec("UPDATE audit SET uid = 4242 WHERE seq = " + std::to_string(tampered));
    }
    Daemon d(o);
    auto c = d.client();
    auto bad = c.call(M("VerifyAuditLog"));
    CHECK_FALSE(bad.at("ok").as_bool());
    CHECK(bad.at("first_bad").as_int64() == tampered);
    // hbsctl says so too, with a failing exit code.
    auto r = run_hbsctl({"--socket", d.socket(), "audit", "verify"});
    CHECK(r.code != 0);
    CHECK(r.out.find("BROKEN") != std::string::npos);

    // After the restart, the retry still returns the first result (a new session: the old one
    // ended with the daemon); the archive holds the same document under that audit entry.
    const auto session = open_session(d, c);
    request["session"] = session;
    auto retry = c.call(M("Sign"), request);
    CHECK(retry.at("document") == first.at("document"));
    CHECK(retry.at("audit_seq") == first.at("audit_seq"));
    auto archived = c.call("vn.hocbaso.SignerAdmin.GetArchived", {{"seq", first.at("audit_seq")}});
    CHECK(archived.at("document") == first.at("document"));
}
