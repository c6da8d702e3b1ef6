// Signing-core benchmark (issue: signing core). Prints, on one SoftHSM2 token in one run:
//  - raw C_Sign/s for RSA-2048 and P-256 (bench/raw_sign: the module's function list, no hbsd);
//  - our full stage signature per second for the fixture record: parse, verify the earlier
//    stages (check_order), c14n + digest + sign through hsm/, serialize; for a subject-teacher
//    stage (nothing earlier) and for the school stage (14 earlier signatures verified first);
//  - the ratios to raw. Targets (RSA-2048, one thread): teacher >= 70 %, school >= 40 %.
// Usage: bench_sign [--seconds N] [--fixture PATH]
#include <unistd.h>

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

namespace fs = std::filesystem;
using namespace hbsd::bench;  // kYear, kToken, kPin, read_file, rate, Rate
using hbsd::dsig::Stage;

namespace {

struct Keys {
    hbsd::hsm::TokenManager& tm;
    hbsd::hsm::Login& login;
    std::string token_uri;

    hbsd::dsig::Signer signer(const std::string& label) {
        std::string uri;
        for (const auto& k : tm.list_keys(token_uri))
            if (k.label == label) uri = k.uri;
        const auto key = tm.find_key(login, uri);
        const auto mech = key.algorithm == hbsd::hsm::KeyAlgorithm::rsa
                              ? hbsd::hsm::Mechanism::rsa_pkcs1_sha256
                              : hbsd::hsm::Mechanism::ecdsa_sha256;
        return {key.certificate_der, [this, uri, mech](std::span<const unsigned char> d) {
                    return tm.sign(login, uri, mech, d);
                }};
    }
};

// One full stage, as the daemon does it for Sign.
std::string sign_stage(const std::string& xml, Stage stage, const std::string& subject,
                       const hbsd::dsig::Signer& signer) {
    auto doc = hbsd::dsig::Document::parse(xml);
    std::optional<std::string_view> subj;
    if (stage == Stage::subject_teacher) subj = subject;
    hbsd::policies::check_order(doc, stage, kYear, subj);
    doc.add_signature(stage, kYear, subj, signer, std::chrono::system_clock::now());
    return doc.serialize();
}

}  // namespace

int main(int argc, char** argv) try {
    double seconds = 3;
    fs::path fixture = HBSD_FIXTURE;
    std::string only;  // "teacher" or "school": one figure alone, for profiling
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc)
            seconds = std::atof(argv[++i]);
        else if (a == "--fixture" && i + 1 < argc)
            fixture = argv[++i];
        else if (a == "--only" && i + 1 < argc)
            only = argv[++i];
        else {
            std::cerr
                << "usage: bench_sign [--seconds N] [--fixture PATH] [--only teacher|school]\n";
            return 2;
        }
    }

    const fs::path dir = hbsd::bench::make_test_token("hbsd-bench");

    const std::string xml = read_file(fixture);
    std::printf("hbsd signing-core benchmark: SoftHSM2 (%s), one thread, %.1f s per figure\n",
                HBSD_SOFTHSM2_MODULE, seconds);

    // Raw figures first: raw_sign initialises and finalises the module itself, which it cannot
    // do while the TokenManager below holds it. Not for --only (profiling one stage).
    hbsd::bench::RawSignResult raw_rsa{}, raw_ec{};
    if (only.empty()) {
        raw_rsa = hbsd::bench::raw_sign(HBSD_SOFTHSM2_MODULE, kToken, kPin, "gvbm-TOAN",
                                        hbsd::bench::RawKind::rsa_pkcs1_sha256, 1, seconds);
        raw_ec = hbsd::bench::raw_sign(HBSD_SOFTHSM2_MODULE, kToken, kPin, "truong",
                                       hbsd::bench::RawKind::ecdsa, 1, seconds);
    }

    hbsd::hsm::TokenManager tm(
        std::vector<hbsd::hsm::ModuleConfig>{{"softhsm", HBSD_SOFTHSM2_MODULE}});
    std::string token_uri;
    for (const auto& t : tm.list_tokens())
        if (t.label == kToken) token_uri = t.uri;
    auto login = tm.login(token_uri, kPin);
    Keys keys{tm, login, token_uri};

    const auto teacher = keys.signer("gvbm-TOAN");
    const auto seal_ec = keys.signer("truong");
    const auto seal_rsa = keys.signer("ht");  // the school stage with an RSA-2048 key

    // The record with every stage up to the principal signed: 12 + 1 + 1 earlier signatures.
    std::string upto_principal = xml;
    {
        const auto subjects = hbsd::dsig::Document::parse(xml).year(kYear)->subjects;
        for (const auto& s : subjects)
            upto_principal =
                sign_stage(upto_principal, Stage::subject_teacher, s, keys.signer("gvbm-" + s));
        upto_principal =
            sign_stage(upto_principal, Stage::homeroom_teacher, "", keys.signer("gvcn"));
        upto_principal = sign_stage(upto_principal, Stage::principal, "", keys.signer("ht"));
    }

    if (!only.empty()) {  // profiling aid: one figure, no raw figures or ratios
        const Rate r =
            only == "teacher"
                ? rate(seconds, [&] { sign_stage(xml, Stage::subject_teacher, "TOAN", teacher); })
                : rate(seconds, [&] { sign_stage(upto_principal, Stage::school, "", seal_rsa); });
        std::printf("%s stage, RSA-2048: %.1f/s wall, %.1f/s cpu\n", only.c_str(), r.wall, r.cpu);
        fs::remove_all(dir);
        return 0;
    }

    const Rate teacher_rate =
        rate(seconds, [&] { sign_stage(xml, Stage::subject_teacher, "TOAN", teacher); });
    const Rate school_rsa_rate =
        rate(seconds, [&] { sign_stage(upto_principal, Stage::school, "", seal_rsa); });
    const Rate school_ec_rate =
        rate(seconds, [&] { sign_stage(upto_principal, Stage::school, "", seal_ec); });

    // Ratios use CPU time: on a busy machine wall-clock rates measure the other processes.
    std::printf("\n%-46s %9s %9s %7s %8s\n", "figure", "wall/s", "cpu/s", "ratio", "target");
    std::printf("%-46s %9.1f %9.1f\n", "raw C_Sign RSA-2048 (CKM_RSA_PKCS, DigestInfo)",
                raw_rsa.per_second, raw_rsa.per_cpu_second);
    std::printf("%-46s %9.1f %9.1f\n", "raw C_Sign P-256 (CKM_ECDSA)", raw_ec.per_second,
                raw_ec.per_cpu_second);
    auto row = [](const char* name, Rate v, double raw_cpu, const char* target) {
        std::printf("%-46s %9.1f %9.1f %6.0f%% %8s\n", name, v.wall, v.cpu, 100.0 * v.cpu / raw_cpu,
                    target);
    };
    row("subject-teacher stage, RSA-2048", teacher_rate, raw_rsa.per_cpu_second, ">= 70%");
    row("school stage (verifies 14 first), RSA-2048", school_rsa_rate, raw_rsa.per_cpu_second,
        ">= 40%");
    row("school stage (verifies 14 first), P-256", school_ec_rate, raw_ec.per_cpu_second, "-");

    fs::remove_all(dir);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "bench_sign: " << e.what() << "\n";
    return 1;
}
