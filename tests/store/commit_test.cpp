// commit_signature, idempotency and the archive.
#include "tests/support/catch.hpp"

#include <atomic>
#include <boost/json.hpp>
#include <thread>

#include "protocol/hex.hpp"
#include "store/store.hpp"
#include "support.hpp"

using namespace hbsd;
using namespace hbsd::store;

namespace {

Bytes bytes(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

SignatureCommit commit(std::string request_id, std::string doc, bool seal = false) {
    SignatureCommit c;
    c.uid = 1000;
    c.request_id = std::move(request_id);
    c.method = "Sign";
    c.request_hash = sha256_hex("request:" + doc);
    c.document_before_sha = sha256_hex("before:" + doc);
    c.document_after = bytes("<HocBa signed=\"" + doc + "\"/>");
    c.record = "94000123-2024-0001";
    c.school = "94000123";
    c.year = "2024-2025";
    c.role = seal ? "school" : "subject_teacher";
    c.fingerprint = sha256_hex("cert");
    c.signature_value_sha = sha256_hex("sigvalue:" + doc);
    c.issues_year = seal;
    c.result = boost::json::object{{"signature", {{"id", "SIG-" + doc}}}};
    c.detail = "stage " + c.role;
    return c;
}

}  // namespace

TEST_CASE("commit_signature writes archive, record, audit, index and idempotency", "[store]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    const auto c = commit("req-1", "one");
    REQUIRE_FALSE(s.replay(1000, "req-1", "Sign", c.request_hash));

    std::string after_sha;
    const auto seq = s.commit_signature(c, &after_sha);
    CHECK(seq == 1);
    CHECK(after_sha == sha256_hex(c.document_after));  // what the audit entry names

    auto entries = s.list_audit();
    REQUIRE(entries.size() == 1);
    const auto& e = entries[0];
    CHECK(e.method == "Sign");
    CHECK(e.outcome == Outcome::ok);
    CHECK(e.record == c.record);
    CHECK(e.role == "subject_teacher");
    CHECK(e.fingerprint == c.fingerprint);
    CHECK(e.document_before == c.document_before_sha);
    CHECK(e.document_after == sha256_hex(c.document_after));
    CHECK(s.verify_audit().ok);

    CHECK(s.archived_document(seq) == c.document_after);
    CHECK(s.archived_by_hash(sha256_hex(c.document_after)) == c.document_after);
    CHECK_FALSE(s.archived_document(99));

    auto made = s.find_signature(*c.signature_value_sha);
    REQUIRE(made);
    CHECK(made->audit_seq == seq);
    CHECK(made->time == e.time);
    CHECK(made->fingerprint == c.fingerprint);
    CHECK_FALSE(s.find_signature(sha256_hex("other")));

    auto r = s.get_record(c.record);
    CHECK(r.state == RecordStateKind::active);
    CHECK(r.school == "94000123");
    CHECK(r.issued_years.empty());

    SECTION("a repeat returns the stored result and signs nothing") {
        auto stored = s.replay(1000, "req-1", "Sign", c.request_hash);
        REQUIRE(stored);
        CHECK(stored->audit_seq == seq);
        CHECK(stored->result == c.result);
        CHECK(stored->document == c.document_after);
        CHECK(s.lookup(1000, "req-1")->request_hash == c.request_hash);
        // A twin that passed replay() before the first committed writes nothing either.
        std::string twin_sha = "untouched";
        CHECK(s.commit_signature(c, &twin_sha) == seq);
        CHECK(twin_sha == "untouched");
        CHECK(s.list_audit().size() == 1);
    }
    SECTION("a repeat with a different request is refused") {
        auto other = commit("req-1", "two");
        for (auto f : std::vector<std::function<void()>>{
                 [&] { s.replay(1000, "req-1", "Sign", other.request_hash); },
                 [&] { s.replay(1000, "req-1", "SignBatch", c.request_hash); },
                 [&] { s.commit_signature(other); }}) {
            auto err = test::error_of(f);
            REQUIRE(err);
            CHECK(err->code() == Errc::InvalidParameter);
            CHECK(test::param(*err, "parameter") == "request_id");
        }
        CHECK(s.list_audit().size() == 1);
    }
    SECTION("request ids are per uid") {
        auto other = commit("req-1", "two");
        other.uid = 1001;
        CHECK_FALSE(s.replay(1001, "req-1", "Sign", other.request_hash));
        CHECK(s.commit_signature(other) == 2);
    }
    SECTION("without a request id there is no idempotency row") {
        auto other = commit("x", "three");
        other.request_id.reset();
        CHECK(s.commit_signature(other) == 2);
        CHECK(s.commit_signature(other) == 3);  // not idempotent: the caller gave no id
        CHECK(s.archived_document(3) == other.document_after);
    }
    SECTION("the school seal issues the year") {
        auto seal = commit("req-seal", "seal", true);
        CHECK(s.commit_signature(seal) == 2);
        r = s.get_record(c.record);
        CHECK(r.issued_years == std::vector<std::string>{"2024-2025"});
        CHECK(r.history.back().ends_with("issued: year 2024-2025"));
    }
}

TEST_CASE("commit_signature re-checks lock and record state under its lock", "[store]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    s.commit_signature(commit("first", "first"));
    auto refused = [&](const char* reason) {
        auto e = test::error_of([&] { s.commit_signature(commit("late", "late")); });
        REQUIRE(e);
        CHECK(test::param(*e, "reason") == reason);
        CHECK_FALSE(s.lookup(1000, "late"));
        CHECK(s.list_audit().size() == 1);
    };
    SECTION("year locked meanwhile") {
        s.set_year_lock("94000123", "2024-2025", true);
        refused("year_locked");
    }
    SECTION("revocation requested meanwhile") {
        s.request_revocation("94000123-2024-0001", "x");
        refused("record_revoked");
    }
    SECTION("transferred meanwhile") {
        s.transfer_record("94000123-2024-0001", "79000001");
        refused("record_transferred");
    }
}

TEST_CASE("a failing commit leaves nothing behind", "[store]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    auto c = commit("req-bad", "bad");
    c.document_before_sha = "not a hash";  // the audit refuses it after the archive insert
    auto e = test::error_of([&] { s.commit_signature(c); });
    REQUIRE(e);
    CHECK_FALSE(s.archived_by_hash(sha256_hex(c.document_after)));
    CHECK_FALSE(s.find_record(c.record));
    CHECK_FALSE(s.lookup(1000, "req-bad"));
    CHECK(s.list_audit().empty());
}

TEST_CASE("concurrent commits from many threads keep one chain", "[store]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 25; ++i) {
                const std::string id = std::to_string(t) + "-" + std::to_string(i);
                s.commit_signature(commit(id, id));
                AuditInput a;
                a.uid = t;
                a.method = "GetRecord";
                a.outcome = Outcome::denied;
                s.append_audit(a);
            }
        });
    // Verifying while they sign sees a consistent prefix of the chain every time.
    std::atomic<bool> verified_ok{true};
    threads.emplace_back([&] {
        for (int i = 0; i < 20; ++i)
            if (!s.verify_audit().ok) verified_ok = false;
    });
    for (auto& th : threads) th.join();
    CHECK(verified_ok);
    auto v = s.verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == 200);
}

TEST_CASE("two Store objects on one file share the chain", "[store]") {
    test::TempDir dir;
    auto a = Store::open(dir / "hbsd.db");
    auto b = Store::open(dir / "hbsd.db");
    for (int i = 0; i < 20; ++i) {
        (i % 2 ? a : b).commit_signature(commit("r" + std::to_string(i), std::to_string(i)));
    }
    CHECK(a.verify_audit().entries == 20);
    CHECK(b.verify_audit().ok);
    CHECK(b.lookup(1000, "r3"));
}
