// The audit chain: appending, listing, verifying, and catching a tampered row.
#include <sqlite3.h>
#include "tests/support/catch.hpp"

#include "protocol/hex.hpp"
#include "store/store.hpp"
#include "support.hpp"

using namespace hbsd;
using namespace hbsd::store;

namespace {

AuditInput entry(int i) {
    AuditInput a;
    a.uid = 1000 + i % 3;
    a.method = i % 2 ? "Sign" : "AssignRole";
    a.outcome = i % 5 == 0 ? Outcome::denied : Outcome::ok;
    if (i % 2) {
        a.record = "94000123-2024-" + std::to_string(i);
        a.role = "subject_teacher";
        a.fingerprint = sha256_hex("cert");
        a.document_before = sha256_hex("before" + std::to_string(i));
        a.document_after = sha256_hex("after" + std::to_string(i));
    }
    if (i % 7 == 0) a.detail = "chữ \"ký\"\n\\ detail " + std::to_string(i);
    return a;
}

// Runs SQL on the file with a plain connection: what someone with the file could do.
void raw_exec(const std::filesystem::path& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    if (rc != SQLITE_OK) throw std::runtime_error(msg);
}

}  // namespace

TEST_CASE("canonical entry and hash follow the documented definition", "[store][audit]") {
    AuditEntry e;
    e.seq = 1;
    e.time = "2026-11-30T00:07:18Z";
    e.uid = 1000;
    e.method = "Sign";
    e.outcome = Outcome::ok;
    e.record = "R1";
    e.detail = "a\"b";
    e.prev_hash = std::string(kGenesisHash);
    CHECK(canonical_entry(e) ==
          R"({"seq":1,"time":"2026-11-30T00:07:18Z","uid":1000,"method":"Sign","outcome":"ok",)"
          R"("record":"R1","role":null,"fingerprint":null,"document_before":null,)"
          R"("document_after":null,"detail":"a\"b"})");
    CHECK(compute_entry_hash(e) == sha256_hex(std::string(kGenesisHash) + canonical_entry(e)));
}

TEST_CASE("the audit chain over many entries", "[store][audit]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    auto v = s.verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == 0);
    CHECK(v.head == kGenesisHash);

    constexpr int n = 500;
    for (int i = 1; i <= n; ++i) CHECK(s.append_audit(entry(i)) == i);

    v = s.verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == n);
    CHECK_FALSE(v.first_bad);

    auto all = s.list_audit(0, 10000);
    REQUIRE(all.size() == n);
    CHECK(all.front().prev_hash == kGenesisHash);
    CHECK(v.head == all.back().entry_hash);
    for (int i = 1; i < n; ++i) {
        CHECK(all[i].prev_hash == all[i - 1].entry_hash);
        CHECK(compute_entry_hash(all[i]) == all[i].entry_hash);
    }
    CHECK(all[6].detail == "chữ \"ký\"\n\\ detail 7");
    CHECK(all[4].outcome == Outcome::denied);
    CHECK(all[0].to_json().at("entry_hash").as_string() == all[0].entry_hash);

    auto page = s.list_audit(100, 10);
    REQUIRE(page.size() == 10);
    CHECK(page.front().seq == 101);
    CHECK(page.back().seq == 110);
    CHECK(s.list_audit(n, 10).empty());
}

TEST_CASE("the audit refuses document bodies", "[store][audit]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    AuditInput a = entry(1);
    a.document_after = "<HocBa>...</HocBa>";
    auto e = test::error_of([&] { s.append_audit(a); });
    REQUIRE(e);
    CHECK(e->code() == Errc::Internal);
    CHECK(s.list_audit().empty());
}

TEST_CASE("tampering with one row is found at that row", "[store][audit]") {
    test::TempDir dir;
    const auto path = dir / "hbsd.db";
    {
        auto s = Store::open(path);
        for (int i = 1; i <= 50; ++i) s.append_audit(entry(i));
    }
    // The triggers refuse an UPDATE through SQL...
    CHECK_THROWS(raw_exec(path, "UPDATE audit SET detail = 'x' WHERE seq = 17"));
    CHECK_THROWS(raw_exec(path, "DELETE FROM audit WHERE seq = 17"));
    CHECK(Store::open(path).verify_audit().ok);

    SECTION("a changed field") {
        // ...but whoever holds the file can drop them; the chain is what catches that.
        raw_exec(path,
                 "DROP TRIGGER audit_no_update; UPDATE audit SET detail = 'x' WHERE seq = 17");
        auto v = Store::open(path).verify_audit();
        CHECK_FALSE(v.ok);
        CHECK(v.first_bad == 17);
        CHECK(v.entries == 50);
        CHECK(v.to_json().at("first_bad").as_int64() == 17);
        CHECK_FALSE(v.to_json().at("ok").as_bool());
    }
    SECTION("a recomputed hash breaks the next link") {
        auto s = Store::open(path);
        auto e = s.list_audit(16, 1).at(0);
        e.detail = "forged";
        const auto forged = compute_entry_hash(e);
        raw_exec(path,
                 "DROP TRIGGER audit_no_update; UPDATE audit SET detail = 'forged', "
                 "entry_hash = '" +
                     forged + "' WHERE seq = 17");
        auto v = Store::open(path).verify_audit();
        CHECK(v.first_bad == 18);
    }
    SECTION("a deleted row") {
        raw_exec(path, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 30");
        auto v = Store::open(path).verify_audit();
        CHECK(v.first_bad == 31);
        CHECK(v.entries == 49);
    }
    SECTION("an outcome outside the enumeration") {
        raw_exec(path,
                 "DROP TRIGGER audit_no_update; UPDATE audit SET outcome = 'ok' "
                 "WHERE seq = 5");  // entry 5 was denied
        CHECK(Store::open(path).verify_audit().first_bad == 5);
    }
}
