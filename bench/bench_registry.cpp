// Registry benchmark (issue 4): what the registry checks and the store commit cost per
// signature. Same SoftHSM2 token, same key, same run, one thread:
//  - plain: parse, check_order, c14n + digest + sign through hsm/, serialize (as bench_sign);
//  - checked: the same plus Registry::check_signing (store lookups, chain validation at now)
//    and Store::commit_signature (archive copy, record, audit entry, signature index and
//    idempotency row in one SQLite transaction, WAL + synchronous FULL: one fsync per commit),
//    as the daemon's Sign does;
//  - checks only: the plain path plus check_signing, without the commit.
// Prints the ratios. Target: checked costs under 10 % more than plain.
// Usage: bench_registry [--seconds N]
#include <unistd.h>

#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>

#include "dsig/document.hpp"
#include "hsm/token_manager.hpp"
#include "policies/order.hpp"
#include "policies/registry.hpp"
#include "store/store.hpp"

namespace fs = std::filesystem;
using hbsd::dsig::Stage;

namespace {

constexpr char kYear[] = "2024-2025";
constexpr char kPin[] = "1234";
constexpr char kToken[] = "hbsd-bench";
constexpr char kSchool[] = "94000123";

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void run(const std::string& cmd) {
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}

double rate(double seconds, const std::function<void()>& f) {
    using clock = std::chrono::steady_clock;
    f();
    long n = 0;
    const auto start = clock::now();
    const auto until = start + std::chrono::duration<double>(seconds);
    while (clock::now() < until) {
        f();
        ++n;
    }
    return n / std::chrono::duration<double>(clock::now() - start).count();
}

std::string sha256_hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) try {
    double seconds = 3;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc)
            seconds = std::atof(argv[++i]);
        else {
            std::cerr << "usage: bench_registry [--seconds N]\n";
            return 2;
        }
    }
    char tmpl[] = "/tmp/hbsd-bench-reg-XXXXXX";
    const fs::path dir = mkdtemp(tmpl);
    run("'" HBSD_TEST_SUPPORT_DIR "/make-test-pki' '" + (dir / "pki").string() + "' >/dev/null");
    run("'" HBSD_TEST_SUPPORT_DIR "/make-softhsm-token' '" + (dir / "hsm").string() + "' '" +
        (dir / "pki").string() + "' " + kToken + " " + kPin);
    setenv("SOFTHSM2_CONF", (dir / "hsm" / "softhsm2.conf").c_str(), 1);
    fs::create_directories(dir / "anchors");
    fs::copy_file(dir / "pki" / "ca.pem", dir / "anchors" / "ca.pem");

    const std::string xml = read_file(HBSD_FIXTURE);
    auto store = hbsd::store::Store::open(dir / "hbsd.db");
    const auto trust = hbsd::policies::TrustStore::load(dir / "anchors");
    const hbsd::policies::Registry registry(store, trust);
    {
        const auto der =
            hbsd::store::certificate_der_from(read_file(dir / "pki" / "gvbm-TOAN.pem"));
        const auto c = store.register_certificate(der, hbsd::store::CertificateKind::person,
                                                  kSchool, std::string_view("GV001"));
        store.approve_certificate(c.fingerprint);
        store.assign({kSchool, kYear, hbsd::store::Role::subject_teacher, "GV001", "6A1", "TOAN"});
    }

    hbsd::hsm::TokenManager tm(
        std::vector<hbsd::hsm::ModuleConfig>{{"softhsm", HBSD_SOFTHSM2_MODULE}});
    std::string token_uri, key_uri;
    for (const auto& t : tm.list_tokens())
        if (t.label == kToken) token_uri = t.uri;
    auto login = tm.login(token_uri, kPin);
    for (const auto& k : tm.list_keys(token_uri))
        if (k.label == "gvbm-TOAN") key_uri = k.uri;
    const auto key = tm.find_key(login, key_uri);
    const hbsd::dsig::Signer signer{key.certificate_der, [&](std::span<const unsigned char> d) {
                                        return tm.sign(login, key_uri,
                                                       hbsd::hsm::Mechanism::rsa_pkcs1_sha256, d);
                                    }};

    long request = 0;
    auto sign_once = [&](bool check, bool commit) {
        auto doc = hbsd::dsig::Document::parse(xml);
        const std::optional<std::string_view> subj = "TOAN";
        hbsd::policies::check_order(doc, Stage::subject_teacher, kYear, subj);
        const auto year = *doc.year(kYear);
        const std::string record = doc.record();
        if (check)
            registry.check_signing(
                hbsd::policies::SigningRequest::from(year, record, Stage::subject_teacher, subj,
                                                     key.certificate_der),
                std::chrono::system_clock::now());
        const auto report = doc.add_signature(Stage::subject_teacher, kYear, subj, signer,
                                              std::chrono::system_clock::now());
        const std::string out = doc.serialize();
        if (!commit) return;
        hbsd::store::SignatureCommit c;
        c.uid = 0;
        c.request_id = "bench-" + std::to_string(++request);
        c.request_hash = sha256_hex(xml);
        c.document_before_sha = sha256_hex(xml);
        c.document_after.assign(out.begin(), out.end());
        c.record = record;
        c.school = year.school;
        c.year = kYear;
        c.role = "subject_teacher";
        c.fingerprint = report.fingerprint;
        c.signature_value_sha = report.signature_value_sha256;
        c.result = boost::json::object{{"signature", report.id}};
        c.detail = "subject TOAN";
        store.commit_signature(c);
    };

    std::printf(
        "hbsd registry benchmark: SoftHSM2 (%s), RSA-2048 subject-teacher stage, one "
        "thread, %.1f s per figure\n",
        HBSD_SOFTHSM2_MODULE, seconds);
    const double plain = rate(seconds, [&] { sign_once(false, false); });
    const double checks = rate(seconds, [&] { sign_once(true, false); });
    const double full = rate(seconds, [&] { sign_once(true, true); });
    const double plain2 = rate(seconds, [&] { sign_once(false, false); });
    // Where check_signing's time goes: the chain validation and the store lookups alone.
    const double trust_only = rate(seconds / 3, [&] {
        (void)trust->check(key.certificate_der, std::chrono::system_clock::now());
    });
    const std::string fp = sha256_hex(std::string_view(
        reinterpret_cast<const char*>(key.certificate_der.data()), key.certificate_der.size()));
    const double lookups_only = rate(seconds / 3, [&] {
        (void)store.find_certificate(fp);
        (void)store.is_assigned(kSchool, kYear, hbsd::store::Role::subject_teacher, "GV001",
                                std::string_view("6A1"), std::string_view("TOAN"));
        (void)store.is_year_locked(kSchool, kYear);
    });
    const double base = (plain + plain2) / 2;  // before and after: drift shows as a spread

    std::printf("\n%-58s %10s %10s %8s\n", "figure", "per s", "cost", "target");
    std::printf("%-58s %10.1f   (runs %.1f / %.1f)\n", "plain: dsig + hsm (no registry, no store)",
                base, plain, plain2);
    std::printf("%-58s %10.1f %9.1f%%\n", "+ Registry::check_signing", checks,
                100.0 * (base / checks - 1));
    std::printf("%-58s %10.1f %9.1f%% %8s\n", "+ check_signing + Store::commit_signature (fsync)",
                full, 100.0 * (base / full - 1), "< 10%");
    std::printf("ratio checked/plain throughput: %.3f\n", full / base);
    std::printf(
        "parts of check_signing: TrustStore::check %.3f ms, store lookups %.3f ms; "
        "one plain signature %.3f ms\n",
        1000.0 / trust_only, 1000.0 / lookups_only, 1000.0 / base);
    fs::remove_all(dir);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "bench_registry: " << e.what() << "\n";
    return 1;
}
