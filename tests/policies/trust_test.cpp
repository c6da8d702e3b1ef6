// policies/trust: chain validation at a given time, CRLs, key usage and key strength.
// The base PKI comes from tests/support/make-test-pki; the odd certificates (revoked, expired,
// another CA's, wrong key usage, weak keys, an intermediate) are made here with openssl.
#include "tests/support/catch.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>

#include "policies/trust.hpp"
#include "protocol/error.hpp"
#include "store/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace hbsd;
using namespace hbsd::policies;
namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void sh(const std::string& script) {
    const std::string cmd = "bash -euo pipefail -c '" + script + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + script);
}

// Everything made once per test binary in one temporary directory.
struct Pki {
    // Declared before `dir`: removes the directory also when the constructor throws.
    test::TempDir tmp{"hbsd-trust-"};
    fs::path dir = tmp.path();
    Pki() {
        sh(std::string(HBSD_TEST_SUPPORT_DIR) + "/make-test-pki " + dir.string() + "/pki");
        // An `openssl ca` database over the test root, for revocation, a CRL and back-dated
        // validity (openssl ca -startdate/-enddate; no faketime needed).
        std::ofstream(dir / "ca.cnf") << R"([ca]
default_ca = tca
[tca]
dir = )" << dir.string() << R"(/cadb
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/../pki/ca.pem
private_key = $dir/../pki/ca.key
default_md = sha256
default_days = 365
default_crl_days = 30
policy = any
unique_subject = no
[any]
countryName = optional
organizationName = optional
commonName = supplied
[signer]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
[nonrep]
basicConstraints = critical, CA:FALSE
keyUsage = critical, nonRepudiation
[enc_only]
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
[no_ku]
basicConstraints = critical, CA:FALSE
[sub_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
)";
        const std::string d = dir.string();
        sh("cd " + d +
           " && mkdir -p cadb/new && touch cadb/index.txt && echo 1000 > "
           "cadb/serial && echo 01 > cadb/crlnumber");
        auto issue = [&](const std::string& name, const std::string& keyopts,
                         const std::string& ext, const std::string& extra) {
            sh("cd " + d + " && openssl genpkey " + keyopts + " -out " + name +
               ".key && openssl req -new -key " + name + ".key -subj /CN=" + name + " -out " +
               name + ".csr && openssl ca -batch -config ca.cnf -notext -extensions " + ext + " " +
               extra + " -in " + name + ".csr -out " + name + ".pem");
        };
        const std::string rsa = "-algorithm RSA -pkeyopt rsa_keygen_bits:2048";
        const std::string p256 = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256";
        issue("revoked", p256, "signer", "");
        issue("expired", p256, "signer", "-startdate 20200101000000Z -enddate 20210101000000Z");
        issue("future", p256, "signer", "-startdate 20991231000000Z -enddate 21001231000000Z");
        issue("nonrep", p256, "nonrep", "");
        issue("enc-only", p256, "enc_only", "");
        issue("no-ku", p256, "no_ku", "");
        issue("rsa1024", "-algorithm RSA -pkeyopt rsa_keygen_bits:1024", "signer", "");
        issue("p521", "-algorithm EC -pkeyopt ec_paramgen_curve:P-521", "signer", "");
        issue("ed25519", "-algorithm ED25519", "signer", "");
        issue("sub-ca", rsa, "sub_ca", "");
        sh("cd " + d +
           " && openssl ca -batch -config ca.cnf -revoke revoked.pem "
           "-crl_reason keyCompromise && openssl ca -batch -config ca.cnf -gencrl -out crl.pem");
        // A leaf under the intermediate.
        sh("cd " + d + " && openssl genpkey " + p256 +
           " -out under-sub.key && openssl req -new "
           "-key under-sub.key -subj /CN=under-sub -out under-sub.csr && openssl x509 -req "
           "-in under-sub.csr -CA sub-ca.pem -CAkey sub-ca.key -set_serial 7 -days 365 "
           "-extfile ca.cnf -extensions signer -out under-sub.pem");
        // Another CA, not configured anywhere, and a leaf it issued.
        sh("cd " + d +
           " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256"
           " -nodes -subj /CN=Other-CA -keyout other-ca.key -out other-ca.pem -days 365 && "
           "openssl genpkey " +
           p256 +
           " -out other.key && openssl req -new -key other.key "
           "-subj /CN=other -out other.csr && openssl x509 -req -in other.csr -CA other-ca.pem "
           "-CAkey other-ca.key -set_serial 9 -days 365 -extfile ca.cnf -extensions signer "
           "-out other.pem");
        // Trust directories: roots only; roots + intermediate; roots + CRL.
        sh("cd " + d +
           " && mkdir -p anchors anchors-sub anchors-crl && cp pki/ca.pem anchors/ "
           "&& cp pki/ca.pem sub-ca.pem anchors-sub/ && cp pki/ca.pem anchors-crl/ && "
           "openssl crl -in crl.pem -outform DER -out anchors-crl/root.crl");
    }
    std::vector<unsigned char> der(const std::string& name) const {
        return store::certificate_der_from(slurp(dir / (name + ".pem")));
    }
};

const Pki& pki() {
    static const Pki p;
    return p;
}

Clock::time_point year(int y) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = 5;
    tm.tm_mday = 1;
    return Clock::from_time_t(timegm(&tm));
}

}  // namespace

TEST_CASE("trust: good certificates of the test PKI", "[trust]") {
    auto trust = TrustStore::load(pki().dir / "anchors");
    CHECK(trust->root_count() == 1);
    CHECK(trust->crl_count() == 0);
    const auto now = Clock::now();
    for (const char* name :
         {"pki/gvbm-TOAN", "pki/gvcn", "pki/ht", "pki/truong", "pki/extra-p384", "nonrep"}) {
        INFO(name);
        const auto r = trust->check(pki().der(name), now);
        CHECK(r.ok());
        CHECK(r.problem == TrustProblem::none);
    }
}

TEST_CASE("trust: expired and not yet valid", "[trust]") {
    auto trust = TrustStore::load(pki().dir / "anchors");
    auto r = trust->check(pki().der("expired"), Clock::now());
    CHECK(r.problem == TrustProblem::expired);
    CHECK(to_string(r.problem) == "expired");
    CHECK_FALSE(r.detail.empty());
    // Judged at a time inside the whole chain's validity, a certificate is fine even if that
    // time is not now (Verify judges at the time hbsd recorded the signature).
    CHECK(trust->check(pki().der("pki/gvcn"), Clock::now() + std::chrono::hours(24 * 365)).ok());
    CHECK(trust->check(pki().der("future"), Clock::now()).problem == TrustProblem::not_yet_valid);
    // A good certificate judged long after its validity, and before it.
    CHECK(trust->check(pki().der("pki/gvcn"), year(2060)).problem == TrustProblem::expired);
    CHECK(trust->check(pki().der("pki/gvcn"), year(2001)).problem == TrustProblem::not_yet_valid);
}

TEST_CASE("trust: a remembered pass holds only where nothing it rests on changes", "[trust]") {
    // TrustStore remembers a pass with the span where the chain is valid and the CRLs current.
    auto trust = TrustStore::load(pki().dir / "anchors");
    const auto now = Clock::now();
    REQUIRE(trust->check(pki().der("pki/gvcn"), now).ok());
    REQUIRE(trust->check(pki().der("pki/gvcn"), now).ok());  // remembered
    CHECK(trust->check(pki().der("pki/gvcn"), year(2060)).problem == TrustProblem::expired);
    CHECK(trust->check(pki().der("pki/gvcn"), year(2001)).problem == TrustProblem::not_yet_valid);
    CHECK(trust->check(pki().der("pki/gvcn"), now).ok());
    // With a CRL (30 days): a pass today says nothing about a day when no CRL is current.
    auto with_crl = TrustStore::load(pki().dir / "anchors-crl");
    REQUIRE(with_crl->check(pki().der("pki/gvbm-TOAN"), now).ok());
    CHECK(with_crl->check(pki().der("pki/gvbm-TOAN"), now + std::chrono::hours(24 * 60)).problem ==
          TrustProblem::crl_unavailable);
    CHECK(with_crl->check(pki().der("pki/gvbm-TOAN"), now).ok());
    // Failures are never remembered as passes.
    CHECK(with_crl->check(pki().der("revoked"), now).problem == TrustProblem::revoked);
    CHECK(with_crl->check(pki().der("revoked"), now).problem == TrustProblem::revoked);
}

TEST_CASE("trust: revoked by CRL", "[trust]") {
    // The CRL given in the anchors directory (DER) or separately (PEM) counts the same.
    for (const auto& trust :
         {TrustStore::load(pki().dir / "anchors-crl"),
          TrustStore::load(TrustConfig{{pki().dir / "anchors"}, {pki().dir / "crl.pem"}})}) {
        CHECK(trust->crl_count() == 1);
        auto r = trust->check(pki().der("revoked"), Clock::now());
        CHECK(r.problem == TrustProblem::revoked);
        CHECK(trust->check(pki().der("pki/gvbm-TOAN"), Clock::now()).ok());
        // The leaf under the intermediate has no CRL from its issuer: unknown, not good.
        auto sub =
            TrustStore::load(TrustConfig{{pki().dir / "anchors-sub"}, {pki().dir / "crl.pem"}});
        CHECK(sub->check(pki().der("under-sub"), Clock::now()).problem ==
              TrustProblem::crl_unavailable);
    }
    // Without the CRL the same certificate passes: revocation is only as good as the CRLs.
    CHECK(TrustStore::load(pki().dir / "anchors")->check(pki().der("revoked"), Clock::now()).ok());
}

TEST_CASE("trust: another CA's certificate is untrusted", "[trust]") {
    auto trust = TrustStore::load(pki().dir / "anchors");
    CHECK(trust->check(pki().der("other"), Clock::now()).problem == TrustProblem::untrusted);
    CHECK(trust->check(pki().der("other-ca"), Clock::now()).problem == TrustProblem::untrusted);
    CHECK(to_string(TrustProblem::untrusted) == "untrusted");
}

TEST_CASE("trust: intermediates complete a chain but are not anchors", "[trust]") {
    auto without = TrustStore::load(pki().dir / "anchors");
    CHECK(without->check(pki().der("under-sub"), Clock::now()).problem == TrustProblem::untrusted);
    auto with = TrustStore::load(pki().dir / "anchors-sub");
    CHECK(with->root_count() == 1);
    CHECK(with->intermediate_count() == 1);
    CHECK(with->check(pki().der("under-sub"), Clock::now()).ok());
    // The intermediate is a CA certificate: it chains, but it is not a signing key.
    CHECK(with->check(pki().der("sub-ca"), Clock::now()).problem == TrustProblem::bad_key_usage);
}

TEST_CASE("trust: key usage and key strength", "[trust]") {
    auto trust = TrustStore::load(pki().dir / "anchors");
    const auto now = Clock::now();
    CHECK(trust->check(pki().der("enc-only"), now).problem == TrustProblem::bad_key_usage);
    CHECK(trust->check(pki().der("no-ku"), now).problem == TrustProblem::bad_key_usage);
    CHECK(trust->check(pki().der("rsa1024"), now).problem == TrustProblem::weak_key);
    CHECK(trust->check(pki().der("p521"), now).problem == TrustProblem::weak_key);
    CHECK(trust->check(pki().der("ed25519"), now).problem == TrustProblem::weak_key);
    CHECK(trust->check(pki().der("pki/ca"), now).problem == TrustProblem::bad_key_usage);
}

TEST_CASE("trust: garbage and bad configurations", "[trust]") {
    auto trust = TrustStore::load(pki().dir / "anchors");
    const std::vector<unsigned char> junk{0x30, 0x02, 0x05, 0x00, 0x00};
    CHECK(trust->check(junk, Clock::now()).problem == TrustProblem::unparseable);
    CHECK(trust->check({}, Clock::now()).problem == TrustProblem::unparseable);

    auto internal = [](auto f) {
        try {
            f();
        } catch (const Error& e) {
            return e.code() == Errc::Internal;
        }
        return false;
    };
    // No root; a private key among the anchors; a file that does not parse; a missing path.
    CHECK(internal([] { TrustStore::from_pem(slurp(pki().dir / "other.pem")); }));
    CHECK(internal([] { TrustStore::from_pem(slurp(pki().dir / "other.key")); }));
    CHECK(internal([] {
        TrustStore::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n"
            "-----END CERTIFICATE-----\n");
    }));
    CHECK(internal([] { TrustStore::load(pki().dir / "nonexistent.pem"); }));
    // A CRL list with a certificate in it is a configuration mistake.
    CHECK(internal([] {
        TrustStore::load(TrustConfig{{pki().dir / "anchors"}, {pki().dir / "other.pem"}});
    }));
    // from_pem: roots and CRL as text.
    auto text = TrustStore::from_pem(slurp(pki().dir / "pki/ca.pem"), slurp(pki().dir / "crl.pem"));
    CHECK(text->check(pki().der("revoked"), Clock::now()).problem == TrustProblem::revoked);
}

TEST_CASE("trust: concurrent checks on one store", "[trust]") {
    auto trust = TrustStore::load(TrustConfig{{pki().dir / "anchors-sub"}, {}});
    const auto good = pki().der("pki/gvbm-TOAN");
    const auto sub = pki().der("under-sub");
    const auto bad = pki().der("other");
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 200; ++i) {
                if (!trust->check(good, Clock::now()).ok()) ++wrong;
                if (!trust->check(sub, Clock::now()).ok()) ++wrong;
                if (trust->check(bad, Clock::now()).problem != TrustProblem::untrusted) ++wrong;
            }
        });
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
}

TEST_CASE("trust: require() raises CertificateInvalid with the reason", "[trust]") {
    auto trust = TrustStore::load(pki().dir / "anchors");
    CHECK_NOTHROW(trust->require(pki().der("pki/ht"), Clock::now()));
    try {
        trust->require(pki().der("expired"), Clock::now());
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::CertificateInvalid);
        CHECK(e.parameters().at("reason").as_string() == "expired");
    }
}
