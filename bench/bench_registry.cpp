// Registry benchmark (issue 4): what the registry checks cost per signature, and apart from
// them what the durable store commit costs. Same SoftHSM2 token, same key, same run, one
// thread, the RSA-2048 subject-teacher stage:
//  - plain: parse, check_order, c14n + digest + sign through hsm/, serialize (as bench_sign);
//  - checked: the same plus Registry::check_signing (store lookups, chain validation at now);
//  - plain + commit: plain plus Store::commit_signature (archive copy, record, audit entry,
//    signature index and idempotency row in one SQLite transaction, WAL + synchronous FULL:
//    one fsync), which the daemon's Sign does whether or not registry checks are on;
//  - checked + commit: Sign with registry_checks = true.
// The target (checks cost under 10 %) compares checked with plain, with and without the
// commit. Rates are given per wall-clock second and per second of this thread's CPU time (a
// busy machine distorts the first; the second leaves out the time waiting for fsync).
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

#include "bench/raw_sign.hpp"
#include "bench/support.hpp"
#include "dsig/document.hpp"
#include "hsm/token_manager.hpp"
#include "policies/order.hpp"
#include "policies/registry.hpp"
#include "protocol/hex.hpp"
#include "store/store.hpp"

namespace fs = std::filesystem;
using hbsd::sha256_hex;
using namespace hbsd::bench;  // kYear, kToken, kPin, read_file, rate, Rate
using hbsd::dsig::Stage;

namespace {

constexpr char kSchool[] = "94000123";

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
    const fs::path dir = hbsd::bench::make_test_token("hbsd-bench-reg");
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
    // Each pair runs twice, interleaved, so that drift shows as a spread, not as a cost.
    Rate plain = rate(seconds, [&] { sign_once(false, false); });
    Rate checked = rate(seconds, [&] { sign_once(true, false); });
    Rate plain_commit = rate(seconds, [&] { sign_once(false, true); });
    Rate checked_commit = rate(seconds, [&] { sign_once(true, true); });
    auto mean = [](Rate a, Rate b) { return Rate{(a.wall + b.wall) / 2, (a.cpu + b.cpu) / 2}; };
    plain = mean(plain, rate(seconds, [&] { sign_once(false, false); }));
    checked = mean(checked, rate(seconds, [&] { sign_once(true, false); }));
    plain_commit = mean(plain_commit, rate(seconds, [&] { sign_once(false, true); }));
    checked_commit = mean(checked_commit, rate(seconds, [&] { sign_once(true, true); }));
    // Where check_signing's time goes: the chain validation and the store lookups alone.
    const Rate trust_only = rate(seconds / 3, [&] {
        (void)trust->check(key.certificate_der, std::chrono::system_clock::now());
    });
    const std::string fp = sha256_hex(std::string_view(
        reinterpret_cast<const char*>(key.certificate_der.data()), key.certificate_der.size()));
    const Rate lookups_only = rate(seconds / 3, [&] {
        (void)store.find_certificate(fp);
        (void)store.is_assigned(kSchool, kYear, hbsd::store::Role::subject_teacher, "GV001",
                                std::string_view("6A1"), std::string_view("TOAN"));
        (void)store.is_year_locked(kSchool, kYear);
    });

    auto cost = [](double base, double with) { return 100.0 * (base / with - 1); };
    std::printf("\n%-44s %9s %9s %10s %10s %7s\n", "figure", "wall/s", "cpu/s", "cost wall",
                "cost cpu", "target");
    auto row = [](const char* name, Rate r) {
        std::printf("%-44s %9.1f %9.1f\n", name, r.wall, r.cpu);
    };
    auto costed = [&](const char* name, Rate r, Rate base, const char* target) {
        std::printf("%-44s %9.1f %9.1f %9.1f%% %9.1f%% %7s\n", name, r.wall, r.cpu,
                    cost(base.wall, r.wall), cost(base.cpu, r.cpu), target);
    };
    row("plain: dsig + hsm", plain);
    costed("checked: + Registry::check_signing", checked, plain, "< 10%");
    row("plain + commit (registry_checks = false)", plain_commit);
    costed("checked + commit (registry_checks = true)", checked_commit, plain_commit, "< 10%");
    costed("the commit alone: plain + commit vs plain", plain_commit, plain, "-");
    std::printf(
        "parts of check_signing (wall): TrustStore::check %.3f ms (remembered: the same "
        "certificate each time), store lookups %.3f ms; one plain signature %.3f ms\n",
        1000.0 / trust_only.wall, 1000.0 / lookups_only.wall, 1000.0 / plain.wall);
    fs::remove_all(dir);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "bench_registry: " << e.what() << "\n";
    return 1;
}
