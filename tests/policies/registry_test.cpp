// policies/registry: every reason a signature is refused for the registry's sake, and the
// non-throwing assessment Verify uses.
#include "tests/support/catch.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>

#include "policies/registry.hpp"
#include "protocol/error.hpp"
#include "store/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace hbsd;
using namespace hbsd::policies;
namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;
using dsig::Stage;

namespace {

constexpr const char* kSchool = "94000123";
constexpr const char* kOtherSchool = "79000001";
constexpr const char* kYear = "2024-2025";
constexpr const char* kClass = "6A1";
constexpr const char* kRecord = "94000123-2024-0001";

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void sh(const std::string& script) {
    const std::string cmd = "bash -euo pipefail -c '" + script + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + script);
}

// The test PKI (made once per binary) and, per test, a fresh store with the demo registry:
// every certificate registered and approved, the 6A1 staff assigned for 2024-2025.
struct Pki {
    // Declared before `dir`: removes the directory also when the constructor throws.
    test::TempDir tmp{"hbsd-registry-"};
    fs::path dir = tmp.path();
    Pki() {
        sh(std::string(HBSD_TEST_SUPPORT_DIR) + "/make-test-pki " + dir.string() + "/pki");
        // A certificate of a CA hbsd does not trust, with the right key usage.
        sh("cd " + dir.string() +
           " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
           "-subj /CN=stranger -keyout stranger.key -out stranger.pem -days 365 "
           "-addext keyUsage=critical,digitalSignature,nonRepudiation");
    }
    std::vector<unsigned char> der(const std::string& name) const {
        return store::certificate_der_from(slurp(dir / (name + ".pem")));
    }
};

const Pki& pki() {
    static const Pki p;
    return p;
}

struct Fixture {
    fs::path db = pki().dir / ("hbsd-" + std::to_string(std::rand()) + ".db");
    store::Store store = store::Store::open(db);
    std::shared_ptr<const TrustStore> trust = TrustStore::from_pem(slurp(pki().dir / "pki/ca.pem"));
    Registry registry{store, trust};
    std::vector<unsigned char> toan = pki().der("pki/gvbm-TOAN");
    std::vector<unsigned char> gvcn = pki().der("pki/gvcn");
    std::vector<unsigned char> ht = pki().der("pki/ht");
    std::vector<unsigned char> seal = pki().der("pki/truong");
    std::vector<unsigned char> other_seal = pki().der("pki/extra-p384");
    std::vector<unsigned char> stranger = pki().der("stranger");

    Fixture() {
        approve(toan, store::CertificateKind::person, kSchool, "GV001");
        approve(gvcn, store::CertificateKind::person, kSchool, "GVCN01");
        approve(ht, store::CertificateKind::person, kSchool, "HT01");
        approve(seal, store::CertificateKind::school, kSchool, std::nullopt);
        approve(other_seal, store::CertificateKind::school, kOtherSchool, std::nullopt);
        approve(stranger, store::CertificateKind::person, kSchool, "GV099");
        store.assign({kSchool, kYear, store::Role::subject_teacher, "GV001", kClass, "TOAN"});
        store.assign({kSchool, kYear, store::Role::subject_teacher, "GV099", kClass, "TINHOC"});
        store.assign({kSchool, kYear, store::Role::homeroom_teacher, "GVCN01", kClass, {}});
        store.assign({kSchool, kYear, store::Role::principal, "HT01", {}, {}});
    }
    ~Fixture() {
        std::error_code ec;
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix, ec);
    }
    void approve(const std::vector<unsigned char>& der, store::CertificateKind kind,
                 const char* school, std::optional<std::string_view> person) {
        auto c = store.register_certificate(der, kind, school, person);
        store.approve_certificate(c.fingerprint);
    }

    SigningRequest request(const std::vector<unsigned char>& der, Stage stage,
                           std::optional<std::string> subject = {}) const {
        SigningRequest r;
        r.certificate_der = der;
        r.stage = stage;
        r.record = kRecord;
        r.school = kSchool;
        r.year = kYear;
        r.class_name = kClass;
        r.subject = std::move(subject);
        return r;
    }

    // The PolicyViolation reason check_signing throws, "" when it allows the signature.
    std::string refusal(const SigningRequest& r, Clock::time_point now = Clock::now()) const {
        try {
            registry.check_signing(r, now);
        } catch (const Error& e) {
            REQUIRE(e.code() == Errc::PolicyViolation);
            const auto& p = e.parameters();
            CHECK_FALSE(p.at("detail").as_string().empty());
            return std::string(p.at("reason").as_string());
        }
        return "";
    }
};

}  // namespace

TEST_CASE("registry: every stage allowed for the assigned, approved, trusted key", "[registry]") {
    Fixture f;
    CHECK(f.refusal(f.request(f.toan, Stage::subject_teacher, "TOAN")).empty());
    CHECK(f.refusal(f.request(f.gvcn, Stage::homeroom_teacher)).empty());
    CHECK(f.refusal(f.request(f.ht, Stage::principal)).empty());
    CHECK(f.refusal(f.request(f.seal, Stage::school)).empty());
    // An existing active record of this school does not change that.
    f.store.ensure_record(kRecord, kSchool);
    CHECK(f.refusal(f.request(f.seal, Stage::school)).empty());
}

TEST_CASE("registry: not_registered", "[registry]") {
    Fixture f;
    const auto unknown = pki().der("pki/gvbm-NGUVAN");
    CHECK(f.refusal(f.request(unknown, Stage::subject_teacher, "NGUVAN")) == "not_registered");
    f.store.register_certificate(unknown, store::CertificateKind::person, kSchool, "GV002");
    f.store.assign({kSchool, kYear, store::Role::subject_teacher, "GV002", kClass, "NGUVAN"});
    // Registered and assigned, but not approved yet.
    CHECK(f.refusal(f.request(unknown, Stage::subject_teacher, "NGUVAN")) == "not_registered");
}

TEST_CASE("registry: untrusted_certificate", "[registry]") {
    Fixture f;
    SECTION("revoked in the registry") {
        f.store.revoke_certificate(f.store.list_certificates()[0].fingerprint, "key lost");
        CHECK(f.refusal(f.request(f.toan, Stage::subject_teacher, "TOAN")) ==
              "untrusted_certificate");
    }
    SECTION("another CA's certificate, though registered, approved and assigned") {
        CHECK(f.refusal(f.request(f.stranger, Stage::subject_teacher, "TINHOC")) ==
              "untrusted_certificate");
    }
    SECTION("expired at hbsd's clock") {
        const auto later = Clock::now() + std::chrono::hours(24 * 365 * 5);
        CHECK(f.refusal(f.request(f.toan, Stage::subject_teacher, "TOAN"), later) ==
              "untrusted_certificate");
    }
}

TEST_CASE("registry: wrong_key", "[registry]") {
    Fixture f;
    // A person's key for the school seal.
    CHECK(f.refusal(f.request(f.ht, Stage::school)) == "wrong_key");
    // Another school's seal.
    CHECK(f.refusal(f.request(f.other_seal, Stage::school)) == "wrong_key");
    // The seal for a person's stage.
    CHECK(f.refusal(f.request(f.seal, Stage::principal)) == "wrong_key");
    CHECK(f.refusal(f.request(f.seal, Stage::subject_teacher, "TOAN")) == "wrong_key");
}

TEST_CASE("registry: not_assigned", "[registry]") {
    Fixture f;
    CHECK(f.refusal(f.request(f.toan, Stage::subject_teacher, "NGUVAN")) == "not_assigned");
    CHECK(f.refusal(f.request(f.toan, Stage::subject_teacher)) == "not_assigned");
    CHECK(f.refusal(f.request(f.toan, Stage::homeroom_teacher)) == "not_assigned");
    CHECK(f.refusal(f.request(f.gvcn, Stage::principal)) == "not_assigned");
    auto r = f.request(f.toan, Stage::subject_teacher, "TOAN");
    r.class_name = "6A2";
    CHECK(f.refusal(r) == "not_assigned");
    r = f.request(f.gvcn, Stage::homeroom_teacher);
    r.year = "2025-2026";
    CHECK(f.refusal(r) == "not_assigned");
    r = f.request(f.ht, Stage::principal);
    r.school = kOtherSchool;
    CHECK(f.refusal(r) == "not_assigned");
    f.store.unassign({kSchool, kYear, store::Role::principal, "HT01", {}, {}});
    CHECK(f.refusal(f.request(f.ht, Stage::principal)) == "not_assigned");
}

TEST_CASE("registry: year_locked", "[registry]") {
    Fixture f;
    f.store.set_year_lock(kSchool, kYear, true);
    CHECK(f.refusal(f.request(f.seal, Stage::school)) == "year_locked");
    CHECK(f.refusal(f.request(f.toan, Stage::subject_teacher, "TOAN")) == "year_locked");
    f.store.set_year_lock(kSchool, kYear, false);
    CHECK(f.refusal(f.request(f.seal, Stage::school)).empty());
}

TEST_CASE("registry: record_revoked and record_transferred", "[registry]") {
    Fixture f;
    f.store.ensure_record(kRecord, kSchool);
    SECTION("revocation requested, then approved") {
        f.store.request_revocation(kRecord, "wrong marks");
        CHECK(f.refusal(f.request(f.ht, Stage::principal)) == "record_revoked");
        f.store.decide_revocation(kRecord, true, "QD-1");
        CHECK(f.refusal(f.request(f.ht, Stage::principal)) == "record_revoked");
    }
    SECTION("transferred away, and signed at the new school") {
        f.store.transfer_record(kRecord, kOtherSchool);
        CHECK(f.refusal(f.request(f.ht, Stage::principal)) == "record_transferred");
        auto r = f.request(f.other_seal, Stage::school);
        r.school = kOtherSchool;
        CHECK(f.refusal(r).empty());
    }
}

TEST_CASE("registry: assess for Verify", "[registry]") {
    Fixture f;
    const auto now = Clock::now();
    auto a = f.registry.assess(f.request(f.toan, Stage::subject_teacher, "TOAN"), now);
    CHECK(a.trusted);
    CHECK(a.registered);
    CHECK(a.problems.empty());

    // Locks and record states do not make an existing signature wrong.
    f.store.set_year_lock(kSchool, kYear, true);
    CHECK(f.registry.assess(f.request(f.seal, Stage::school), now).registered);

    a = f.registry.assess(f.request(f.stranger, Stage::subject_teacher, "TINHOC"), now);
    CHECK_FALSE(a.trusted);
    CHECK(a.registered);
    REQUIRE(a.problems.size() == 1);
    CHECK(a.problems[0].starts_with("untrusted_certificate: untrusted: "));

    a = f.registry.assess(f.request(f.toan, Stage::subject_teacher, "TINHOC"), now);
    CHECK(a.trusted);
    CHECK_FALSE(a.registered);
    CHECK(a.problems.at(0).starts_with("not_assigned: "));

    a = f.registry.assess(f.request(pki().der("pki/gvbm-GDCD"), Stage::subject_teacher, "GDCD"),
                          now);
    CHECK(a.trusted);
    CHECK_FALSE(a.registered);
    CHECK(a.problems.at(0).starts_with("not_registered: "));

    a = f.registry.assess(f.request(f.ht, Stage::school), now);
    CHECK_FALSE(a.registered);
    CHECK(a.problems.at(0).starts_with("wrong_key: "));

    // Revoked in the registry: signatures made before stay good, later ones do not.
    f.store.revoke_certificate(f.store.list_certificates()[0].fingerprint, "left the school");
    // (One second before `now`: the test PKI is seconds old, and times are whole seconds.)
    const auto before = now - std::chrono::seconds(1);
    const auto after = now + std::chrono::hours(1);
    a = f.registry.assess(f.request(f.toan, Stage::subject_teacher, "TOAN"), before);
    CHECK(a.trusted);
    CHECK(a.registered);
    a = f.registry.assess(f.request(f.toan, Stage::subject_teacher, "TOAN"), after);
    CHECK_FALSE(a.trusted);
    CHECK(a.registered);
    CHECK(a.problems.at(0).find("left the school") != std::string::npos);
}

TEST_CASE("registry: SigningRequest from dsig's YearReport", "[registry]") {
    dsig::YearReport y;
    y.year = kYear;
    y.school = kSchool;
    y.class_name = kClass;
    const std::vector<unsigned char> der{1, 2, 3};
    const auto r = SigningRequest::from(y, kRecord, Stage::subject_teacher, "TOAN", der);
    CHECK(r.school == kSchool);
    CHECK(r.year == kYear);
    CHECK(r.class_name == kClass);
    CHECK(r.record == kRecord);
    CHECK(r.subject == "TOAN");
    CHECK(r.certificate_der.size() == 3);
}
