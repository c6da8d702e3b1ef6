// hbsctl against the real daemon: sub-commands, output files, PIN from a descriptor, exit codes.
#include "harness.hpp"
#include "tests/support/catch.hpp"

#include "hbsctl/exit_codes.hpp"

using namespace hbsd;
using namespace hbsd::test;
namespace json = boost::json;
namespace ex = hbsd::hbsctl;

namespace {

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

}  // namespace

TEST_CASE("hbsctl: introspection and usage and connection errors") {
    Daemon d;
    auto info = run_hbsctl({"-s", d.socket(), "info"});
    CHECK(info.code == ex::ok);
    CHECK(info.out.find("vendor      hbsd") != std::string::npos);
    auto desc = run_hbsctl({"-s", d.socket(), "describe"});
    CHECK(desc.code == ex::ok);
    CHECK(desc.out == read_file(HBSD_VARLINK));
    auto tokens = run_hbsctl({"-s", d.socket(), "--json", "tokens"});
    CHECK(tokens.code == ex::ok);
    CHECK(json::parse(tokens.out).at("tokens").as_array().size() >= 1);
    auto keys = run_hbsctl({"-s", d.socket(), "keys", d.token_uri()});
    CHECK(keys.out.find("label: truong  ec-256") != std::string::npos);

    CHECK(run_hbsctl({"-s", d.socket(), "frobnicate"}).code == ex::usage);
    CHECK(run_hbsctl({"-s", d.socket(), "sign", "--role", "janitor"}).code == ex::usage);
    CHECK(run_hbsctl({"-s", d.dir().string() + "/nothing.sock", "status"}).code == ex::connection);
    // No terminal and no --pin-fd: refuses rather than reading the PIN from somewhere else.
    CHECK(run_hbsctl({"-s", d.socket(), "open-session", d.token_uri()}).code == ex::usage);
}

TEST_CASE("hbsctl: open-session sign verify sign-batch") {
    Daemon d(DaemonOptions().grant(kNobody, R"(["read"])"));
    auto bad = run_hbsctl({"-s", d.socket(), "open-session", "--pin-fd", "3", d.token_uri()}, {},
                          "9999\n");
    CHECK(bad.code == ex::token);
    CHECK(bad.err.find("PinIncorrect") != std::string::npos);

    auto open = run_hbsctl({"-s", d.socket(), "open-session", "-q", "--pin-fd", "3", d.token_uri()},
                           {}, std::string(kPin) + "\n");
    REQUIRE(open.code == ex::ok);
    const std::string session = trim(open.out);
    CHECK(session.size() == 32);

    const auto out = d.dir() / "signed.xml";
    std::vector<std::string> common{"-s",    d.socket(), "sign", "--session",
                                    session, "--year",   kYear};
    auto args = common;
    args.insert(args.end(), {"--key", d.key_uri("gvbm-TOAN"), "--role", "subject_teacher",
                             "--subject", "TOAN", "-o", out.string(), HBSD_FIXTURE});
    auto s1 = run_hbsctl(args);
    REQUIRE(s1.code == ex::ok);
    CHECK(s1.out.find("SIG-GVBM-94000123-2024-0001-2024-2025-TOAN") != std::string::npos);
    CHECK(read_file(out).find("Id=\"SIG-GVBM-94000123-2024-0001-2024-2025-TOAN\"") !=
          std::string::npos);

    // stdin to stdout
    args = common;
    args.insert(args.end(), {"--key", d.key_uri("gvbm-NGUVAN"), "--role", "subject_teacher",
                             "--subject", "NGUVAN", "-"});
    auto s2 = run_hbsctl(args, read_file(out));
    REQUIRE(s2.code == ex::ok);
    CHECK(s2.out.rfind("<?xml", 0) == 0);
    CHECK(s2.out.find("SIG-GVBM-94000123-2024-0001-2024-2025-NGUVAN") != std::string::npos);
    CHECK(s2.err.find("audit_seq") != std::string::npos);

    // Out of order: policy violation.
    args = common;
    args.insert(args.end(), {"--key", d.key_uri("ht"), "--role", "principal", "-"});
    CHECK(run_hbsctl(args, s2.out).code == ex::policy);
    // Not a record at all.
    CHECK(run_hbsctl(args, "<nope/>").code == ex::invalid_document);

    // verify: incomplete, invalid after tampering, invalid document
    CHECK(run_hbsctl({"-s", d.socket(), "verify", out.string()}).code == ex::verify_incomplete);
    std::string tampered = s2.out;
    tampered.replace(tampered.find("<DiemHK1>8.5"), 12, "<DiemHK1>9.5");
    auto vt = run_hbsctl({"-s", d.socket(), "verify", "-"}, tampered);
    CHECK(vt.code == ex::verify_invalid);
    CHECK(vt.out.find("verdict: invalid") != std::string::npos);
    CHECK(run_hbsctl({"-s", d.socket(), "verify", "-"}, "not xml").code == ex::invalid_document);
    CHECK(run_hbsctl({"-s", d.socket(), "verify", "/nonexistent.xml"}).code ==
          ex::invalid_document);

    // A uid with read only: verify works, sign is refused.
    const auto nobody = as_uid(kNobody, [&] {
        auto v = run_hbsctl({"-s", d.socket(), "verify", "-"}, read_file(out));
        auto s = run_hbsctl(
            {"-s", d.socket(), "sign", "--session", session, "--year", kYear, "--key",
             d.key_uri("gvbm-GDCD"), "--role", "subject_teacher", "--subject", "GDCD", "-"},
            read_file(out));
        return std::to_string(v.code) + " " + std::to_string(s.code);
    });
    CHECK(nobody == std::to_string(ex::verify_incomplete) + " " + std::to_string(ex::permission));

    // sign-batch: five records, one broken; the others are written under the same names.
    const auto in = d.dir() / "in";
    const auto signed_dir = d.dir() / "out";
    std::filesystem::create_directories(in);
    std::filesystem::create_directories(signed_dir);
    std::vector<std::string> batch{"-s",
                                   d.socket(),
                                   "sign-batch",
                                   "--session",
                                   session,
                                   "--year",
                                   kYear,
                                   "--key",
                                   d.key_uri("gvbm-TOAN"),
                                   "--role",
                                   "subject_teacher",
                                   "--subject",
                                   "TOAN",
                                   "--chunk",
                                   "2",
                                   "-o",
                                   signed_dir.string()};
    for (int n = 1; n <= 5; ++n) {
        const auto f = in / ("student-" + std::to_string(n) + ".xml");
        write_file(f, n == 4 ? std::string("<HocBa/>") : fixture_student(n));
        batch.push_back(f.string());
    }
    auto b = run_hbsctl(batch);
    CHECK(b.code == ex::batch_partial);
    CHECK(b.out.find("4 signed, 1 failed") != std::string::npos);
    CHECK(std::filesystem::exists(signed_dir / "student-1.xml"));
    CHECK(std::filesystem::exists(signed_dir / "student-5.xml"));
    CHECK_FALSE(std::filesystem::exists(signed_dir / "student-4.xml"));

    CHECK(run_hbsctl({"-s", d.socket(), "close-session", session}).code == ex::ok);
    args = common;
    args.insert(args.end(), {"--key", d.key_uri("gvbm-GDCD"), "--role", "subject_teacher",
                             "--subject", "GDCD", "-"});
    CHECK(run_hbsctl(args, read_file(out)).code == ex::token);  // SessionNotFound
}
