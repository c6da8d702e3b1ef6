// The store's registry, assignments, locks, records and schema.
#include <openssl/pem.h>
#include <sqlite3.h>
#include "tests/support/catch.hpp"

#include <fstream>

#include "store/store.hpp"
#include "support.hpp"

using namespace hbsd;
using namespace hbsd::store;
using test::error_of;
using test::param;

namespace {

int raw_user_version(const std::filesystem::path& path) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr);
    sqlite3_step(st);
    const int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

std::string raw_text(const std::filesystem::path& path, const char* sql) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

}  // namespace

TEST_CASE("open creates the schema in an empty file and reopens it", "[store]") {
    test::TempDir dir;
    const auto path = dir / "hbsd.db";
    {
        auto s = Store::open(path);
        CHECK(s.schema_version() == Store::latest_schema_version());
        CHECK(Store::latest_schema_version() >= 1);
        s.set_year_lock("94000123", "2024-2025", true);
    }
    CHECK(raw_user_version(path) == Store::latest_schema_version());
    CHECK(raw_text(path, "PRAGMA journal_mode") == "wal");
    {
        auto s = Store::open(path);  // no migration runs twice, data survives
        CHECK(s.schema_version() == Store::latest_schema_version());
        CHECK(s.is_year_locked("94000123", "2024-2025"));
    }
}

TEST_CASE("an empty pre-existing file is migrated", "[store]") {
    test::TempDir dir;
    const auto path = dir / "empty.db";
    { std::ofstream(path.string()).flush(); }
    auto s = Store::open(path);
    CHECK(s.schema_version() == Store::latest_schema_version());
    CHECK(s.list_certificates().empty());
}

TEST_CASE("a file from a newer build is refused", "[store]") {
    test::TempDir dir;
    const auto path = dir / "newer.db";
    { Store::open(path); }
    {
        sqlite3* db = nullptr;
        sqlite3_open(path.c_str(), &db);
        sqlite3_exec(db, "PRAGMA user_version=999", nullptr, nullptr, nullptr);
        sqlite3_close(db);
    }
    auto e = error_of([&] { Store::open(path); });
    REQUIRE(e);
    CHECK(e->code() == Errc::Internal);
}

TEST_CASE("certificates: register, approve, revoke, get, list", "[store]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    const auto teacher = test::make_cert_der("Giáo viên Toán", 0x1234);
    const auto seal = test::make_cert_der("Trường THCS", 7);

    auto c = s.register_certificate(teacher, CertificateKind::person, "94000123", "GV001");
    CHECK(c.fingerprint.size() == 64);
    CHECK(c.status == CertificateStatus::pending);
    CHECK(c.subject == "CN=Giáo viên Toán,C=VN");
    CHECK(c.issuer == c.subject);
    CHECK(c.serial == "1234");
    CHECK(c.not_before.size() == 20);
    CHECK(c.not_after > c.not_before);
    CHECK(c.person == "GV001");
    CHECK(c.der == teacher);
    CHECK(c.to_json().at("status").as_string() == "pending");
    CHECK(c.to_json().at("kind").as_string() == "person");

    SECTION("registering again is idempotent, with other attributes refused") {
        auto again = s.register_certificate(teacher, CertificateKind::person, "94000123", "GV001");
        CHECK(again.fingerprint == c.fingerprint);
        auto e = error_of(
            [&] { s.register_certificate(teacher, CertificateKind::person, "94000123", "GV002"); });
        REQUIRE(e);
        CHECK(e->code() == Errc::InvalidParameter);
        CHECK(param(*e, "parameter") == "certificate");
    }
    SECTION("bad input") {
        const std::vector<unsigned char> junk{0x30, 0x03, 0x01, 0x01, 0xff};
        auto e = error_of(
            [&] { s.register_certificate(junk, CertificateKind::person, "94000123", "GV9"); });
        REQUIRE(e);
        CHECK(e->code() == Errc::CertificateInvalid);
        e = error_of([&] {
            s.register_certificate(teacher, CertificateKind::person, "94000123", std::nullopt);
        });
        REQUIRE(e);
        CHECK(param(*e, "parameter") == "person");
        e = error_of(
            [&] { s.register_certificate(seal, CertificateKind::school, "94000123", "X"); });
        REQUIRE(e);
        CHECK(param(*e, "parameter") == "person");
    }
    SECTION("approve, revoke; revoked stays revoked") {
        CHECK(s.approve_certificate(c.fingerprint).status == CertificateStatus::approved);
        CHECK(s.approve_certificate(c.fingerprint).status == CertificateStatus::approved);
        auto r = s.revoke_certificate(c.fingerprint, "key lost");
        CHECK(r.status == CertificateStatus::revoked);
        CHECK(r.revoke_reason == "key lost");
        CHECK(r.revoked_at);
        CHECK(s.revoke_certificate(c.fingerprint, "again").revoke_reason == "key lost");
        auto e = error_of([&] { s.approve_certificate(c.fingerprint); });
        REQUIRE(e);
        CHECK(e->code() == Errc::CertificateInvalid);
        CHECK(s.get_certificate(c.fingerprint).status == CertificateStatus::revoked);
    }
    SECTION("unknown fingerprints") {
        const std::string unknown(64, 'a');
        for (auto f : std::vector<std::function<void()>>{
                 [&] { s.get_certificate(unknown); }, [&] { s.approve_certificate(unknown); },
                 [&] { s.revoke_certificate(unknown, "x"); }}) {
            auto e = error_of(f);
            REQUIRE(e);
            CHECK(e->code() == Errc::CertificateNotFound);
        }
        CHECK_FALSE(s.find_certificate(unknown));
    }
    SECTION("list by school") {
        s.register_certificate(seal, CertificateKind::school, "94000123", std::nullopt);
        s.register_certificate(test::make_cert_der("Other", 9), CertificateKind::person, "79000001",
                               "GV7");
        CHECK(s.list_certificates().size() == 3);
        auto mine = s.list_certificates("94000123");
        REQUIRE(mine.size() == 2);
        CHECK(mine[0].fingerprint == c.fingerprint);  // registration order
        CHECK(mine[1].kind == CertificateKind::school);
        CHECK_FALSE(mine[1].person);
        CHECK(s.list_certificates("nowhere").empty());
    }
}

TEST_CASE("certificate_der_from accepts PEM and DER", "[store]") {
    const auto der = test::make_cert_der("x", 1);
    CHECK(certificate_der_from(std::string(der.begin(), der.end())) == der);
    // Base64 by hand would be long; a round trip through OpenSSL's PEM writer is enough.
    BIO* bio = BIO_new(BIO_s_mem());
    const unsigned char* p = der.data();
    X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
    PEM_write_bio_X509(bio, x);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    CHECK(certificate_der_from(std::string(data, static_cast<std::size_t>(n))) == der);
    X509_free(x);
    BIO_free(bio);
    auto e = error_of([] { certificate_der_from("-----BEGIN CERTIFICATE-----\nnope\n"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::CertificateInvalid);
}

TEST_CASE("assignments", "[store]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    const Assignment toan{"94000123", "2024-2025", Role::subject_teacher, "GV001", "6A1", "TOAN"};
    const Assignment gvcn{"94000123", "2024-2025", Role::homeroom_teacher, "GVCN01", "6A1", {}};
    const Assignment ht{"94000123", "2024-2025", Role::principal, "HT01", {}, {}};
    s.assign(toan);
    s.assign(toan);  // idempotent
    s.assign(gvcn);
    s.assign(ht);
    CHECK(s.list_assignments("94000123", "2024-2025").size() == 3);
    CHECK(s.list_assignments("94000123", "2025-2026").empty());
    CHECK(s.list_assignments("94000123", "2024-2025")[0].to_json().at("role").as_string() ==
          "homeroom_teacher");

    CHECK(s.is_assigned("94000123", "2024-2025", Role::subject_teacher, "GV001", "6A1", "TOAN"));
    CHECK_FALSE(
        s.is_assigned("94000123", "2024-2025", Role::subject_teacher, "GV001", "6A1", "NGUVAN"));
    CHECK_FALSE(
        s.is_assigned("94000123", "2024-2025", Role::subject_teacher, "GV001", "6A2", "TOAN"));
    CHECK_FALSE(
        s.is_assigned("94000123", "2025-2026", Role::subject_teacher, "GV001", "6A1", "TOAN"));
    CHECK_FALSE(
        s.is_assigned("79000001", "2024-2025", Role::subject_teacher, "GV001", "6A1", "TOAN"));
    CHECK_FALSE(s.is_assigned("94000123", "2024-2025", Role::subject_teacher, "GV001", "6A1",
                              std::nullopt));
    CHECK(s.is_assigned("94000123", "2024-2025", Role::homeroom_teacher, "GVCN01", "6A1", "X"));
    CHECK_FALSE(s.is_assigned("94000123", "2024-2025", Role::homeroom_teacher, "GVCN01", "6A2",
                              std::nullopt));
    CHECK_FALSE(s.is_assigned("94000123", "2024-2025", Role::homeroom_teacher, "GV001", "6A1",
                              std::nullopt));
    CHECK(s.is_assigned("94000123", "2024-2025", Role::principal, "HT01", "6A7", std::nullopt));
    CHECK_FALSE(s.is_assigned("94000123", "2024-2025", Role::principal, "GV001", std::nullopt,
                              std::nullopt));

    CHECK(s.unassign(toan));
    CHECK_FALSE(s.unassign(toan));
    CHECK_FALSE(
        s.is_assigned("94000123", "2024-2025", Role::subject_teacher, "GV001", "6A1", "TOAN"));

    auto bad = [&](Assignment a, const char* which) {
        auto e = error_of([&] { s.assign(a); });
        REQUIRE(e);
        CHECK(e->code() == Errc::InvalidParameter);
        CHECK(param(*e, "parameter") == which);
    };
    bad({"94000123", "2024-2025", Role::subject_teacher, "GV001", "6A1", {}}, "subject");
    bad({"94000123", "2024-2025", Role::subject_teacher, "GV001", {}, "TOAN"}, "class");
    bad({"94000123", "2024-2025", Role::homeroom_teacher, "GV001", {}, {}}, "class");
    bad({"94000123", "2024-2025", Role::homeroom_teacher, "GV001", "6A1", "TOAN"}, "subject");
    bad({"94000123", "2024-2025", Role::principal, "HT01", "6A1", {}}, "class");
    bad({"", "2024-2025", Role::principal, "HT01", {}, {}}, "school");
}

TEST_CASE("year locks", "[store]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    CHECK_FALSE(s.is_year_locked("94000123", "2024-2025"));
    s.set_year_lock("94000123", "2024-2025", true);
    s.set_year_lock("94000123", "2024-2025", true);
    CHECK(s.is_year_locked("94000123", "2024-2025"));
    CHECK_FALSE(s.is_year_locked("94000123", "2025-2026"));
    CHECK_FALSE(s.is_year_locked("79000001", "2024-2025"));
    s.set_year_lock("94000123", "2024-2025", false);
    CHECK_FALSE(s.is_year_locked("94000123", "2024-2025"));
}

TEST_CASE("records: states, transitions and history", "[store]") {
    test::TempDir dir;
    auto s = Store::open(dir / "hbsd.db");
    const std::string r = "94000123-2024-0001";

    auto e = error_of([&] { s.get_record(r); });
    REQUIRE(e);
    CHECK(e->code() == Errc::RecordNotFound);
    CHECK(param(*e, "record") == r);
    CHECK_FALSE(s.find_record(r));

    auto st = s.ensure_record(r, "94000123");
    CHECK(st.state == RecordStateKind::active);
    CHECK(st.school == "94000123");
    REQUIRE(st.history.size() == 1);
    CHECK(st.history[0].ends_with(" created: school 94000123"));
    CHECK(s.ensure_record(r, "79000001").school == "94000123");  // unchanged

    st = s.add_issued_year(r, "2025-2026");
    st = s.add_issued_year(r, "2024-2025");
    st = s.add_issued_year(r, "2024-2025");
    CHECK(st.issued_years == std::vector<std::string>{"2024-2025", "2025-2026"});
    CHECK(st.history.size() == 3);

    SECTION("revocation approved") {
        st = s.request_revocation(r, "wrong marks");
        CHECK(st.state == RecordStateKind::revocation_requested);
        CHECK(st.history.back().ends_with("revocation_requested: wrong marks"));
        e = error_of([&] { s.request_revocation(r, "again"); });
        REQUIRE(e);
        CHECK(e->code() == Errc::InvalidParameter);
        e = error_of([&] { s.transfer_record(r, "79000001"); });
        REQUIRE(e);
        CHECK(param(*e, "reason") == "record_revoked");
        st = s.decide_revocation(r, true, "BGDDT-123/QD");
        CHECK(st.state == RecordStateKind::revoked);
        CHECK(st.history.back().ends_with("revoked: BGDDT-123/QD"));
        e = error_of([&] { s.request_revocation(r, "x"); });
        REQUIRE(e);
        CHECK(param(*e, "reason") == "record_revoked");
        e = error_of([&] { s.decide_revocation(r, false, "x"); });
        REQUIRE(e);
        CHECK(e->code() == Errc::InvalidParameter);
        CHECK(s.get_record(r).to_json().at("state").as_string() == "revoked");
    }
    SECTION("revocation refused returns to the state before") {
        s.transfer_record(r, "79000001");
        s.request_revocation(r, "x");
        st = s.decide_revocation(r, false, "refused-1");
        CHECK(st.state == RecordStateKind::transferred);
        CHECK(st.school == "79000001");
        e = error_of([&] { s.decide_revocation(r, true, "x"); });
        REQUIRE(e);
        CHECK(e->code() == Errc::InvalidParameter);
    }
    SECTION("transfer") {
        st = s.transfer_record(r, "79000001");
        CHECK(st.state == RecordStateKind::transferred);
        CHECK(st.school == "79000001");
        CHECK(st.history.back().ends_with("transferred: from 94000123 to 79000001"));
        e = error_of([&] { s.transfer_record(r, "79000001"); });
        REQUIRE(e);
        CHECK(param(*e, "parameter") == "to_school");
        st = s.transfer_record(r, "94000123");  // and back again
        CHECK(st.school == "94000123");
        CHECK(st.issued_years.size() == 2);
    }
    SECTION("unknown records") {
        for (auto f :
             std::vector<std::function<void()>>{[&] { s.request_revocation("nope", "x"); },
                                                [&] { s.decide_revocation("nope", true, "x"); },
                                                [&] { s.transfer_record("nope", "1"); },
                                                [&] { s.add_issued_year("nope", "y"); }}) {
            auto err = error_of(f);
            REQUIRE(err);
            CHECK(err->code() == Errc::RecordNotFound);
        }
    }
}
