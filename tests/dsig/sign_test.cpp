// Signing through all four stages, across two years, and what the signer callback may do.
#include <thread>

#include "dsig/c14n.hpp"
#include "tests/support/catch.hpp"

#include "dsig/document.hpp"
#include "policies/order.hpp"
#include "support.hpp"

using namespace hbsd;
using namespace hbsd::test;
using dsig::Stage;

TEST_CASE("the fixture signed through all four stages verifies, in order") {
    const std::string& xml = fully_signed();
    auto doc = dsig::Document::parse(xml);
    const dsig::Report& r = doc.report();
    CHECK(r.record == kRecord);
    REQUIRE(r.signatures.size() == 15);
    for (const auto& s : r.signatures) {
        INFO(s.id << ": " << (s.problems.empty() ? "" : s.problems.front()));
        CHECK(s.valid);
        CHECK(s.in_order);
        CHECK(s.year == kYear);
        CHECK(s.fingerprint.size() == 64);
        CHECK(s.signature_value_sha256.size() == 64);
        CHECK(s.signing_time == "2025-05-30T08:00:00Z");
    }
    CHECK(r.signatures[0].id == sig_id(Stage::subject_teacher, kYear, "TOAN"));
    CHECK(r.signatures[0].subject == "TOAN");
    CHECK(r.signatures[12].role == Stage::homeroom_teacher);
    CHECK(r.signatures[13].role == Stage::principal);
    CHECK(r.signatures[14].role == Stage::school);
    CHECK(r.signatures[14].signer.find("Truong THCS") != std::string::npos);
    REQUIRE(r.years.size() == 1);
    CHECK(r.years[0].stage == Stage::school);
    CHECK(r.years[0].missing_subjects.empty());
    CHECK(r.years[0].school == "94000123");
    CHECK(r.years[0].class_name == "6A1");
    CHECK(r.verdict() == dsig::Report::Verdict::valid);
}

TEST_CASE("documents on different threads sign and verify independently") {
    // Signers are made up front: the test's signer cache is not thread-safe, the library is.
    std::vector<dsig::Signer> teachers;
    for (const auto& s : kSubjects) teachers.push_back(stage_signer(Stage::subject_teacher, s));
    dsig::Signer gvcn = stage_signer(Stage::homeroom_teacher);
    std::vector<std::string> results(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < results.size(); ++t) {
        threads.emplace_back([&, t] {
            try {
                auto doc = dsig::Document::parse(fixture());
                for (std::size_t i = 0; i < kSubjects.size(); ++i)
                    doc.add_signature(Stage::subject_teacher, kYear, kSubjects[i], teachers[i],
                                      fixed_time());
                doc.add_signature(Stage::homeroom_teacher, kYear, std::nullopt, gvcn, fixed_time());
                auto again = dsig::Document::parse(doc.serialize());
                for (const auto& s : again.report().signatures)
                    if (!s.valid || !s.in_order) results[t] += s.id + " ";
            } catch (const std::exception& e) {
                results[t] = e.what();
            }
        });
    }
    for (auto& th : threads) th.join();
    for (const auto& r : results) CHECK(r.empty());
}

TEST_CASE("one Document through all stages: its own report agrees with a fresh parse") {
    // The same Document checks, signs, checks again (memoised canonical forms live across
    // add_signature calls); a fresh parse recomputes everything.
    auto doc = dsig::Document::parse(with_second_year(fully_signed()));
    CHECK(doc.report().verdict() == dsig::Report::Verdict::incomplete);
    for (const auto& s : kSubjects) {
        policies::check_order(doc, Stage::subject_teacher, kYear2, s);
        doc.add_signature(Stage::subject_teacher, kYear2, s,
                          stage_signer(Stage::subject_teacher, s), fixed_time());
    }
    for (Stage st : {Stage::homeroom_teacher, Stage::principal, Stage::school}) {
        policies::check_order(doc, st, kYear2, std::nullopt);
        (void)doc.report();  // verify everything between the stages too
        doc.add_signature(st, kYear2, std::nullopt, stage_signer(st), fixed_time());
    }
    const dsig::Report& mine = doc.report();
    auto fresh = dsig::Document::parse(doc.serialize());
    const dsig::Report& theirs = fresh.report();
    REQUIRE(mine.signatures.size() == 30);
    REQUIRE(theirs.signatures.size() == 30);
    for (std::size_t i = 0; i < 30; ++i) {
        INFO(theirs.signatures[i].id);
        CHECK(mine.signatures[i].id == theirs.signatures[i].id);
        CHECK(theirs.signatures[i].valid);
        CHECK(theirs.signatures[i].in_order);
        CHECK(mine.signatures[i].valid);
        CHECK(mine.signatures[i].signature_value_sha256 ==
              theirs.signatures[i].signature_value_sha256);
    }
    CHECK(theirs.verdict() == dsig::Report::Verdict::valid);
}

TEST_CASE("subtree C14N gives the bytes of xmlsec's whole-document C14N") {
    // RSA PKCS#1 v1.5 is deterministic: signing the same record at the same time with the
    // same keys gives the same bytes iff every canonical form (References and SignedInfo)
    // is the same. Comments, PIs and spare namespace declarations make it less trivial.
    std::string variant = replace_once(fixture(), "<HocBa xmlns=\"urn:vn:hocbaso:1\"",
                                       "<HocBa xmlns=\"urn:vn:hocbaso:1\" xmlns:x=\"urn:x\"");
    variant = replace_once(variant, "<CapHoc>", "<!-- c --><?pi data?><CapHoc>");
    variant = replace_once(variant, "<DiemHK2>9.0</DiemHK2>", "<DiemHK2>9.0</DiemHK2><!-- d -->");
    variant = with_second_year(variant);
    auto sign_all = [&](bool subtree) {
        dsig::detail::set_subtree_c14n(subtree);
        std::string out =
            sign_year(sign_year(variant, kYear, Stage::school), kYear2, Stage::school);
        dsig::detail::set_subtree_c14n(true);
        return out;
    };
    const std::string fast = sign_all(true);
    const std::string slow = sign_all(false);
    REQUIRE(fast == slow);
    // The subtree path without its callback-free shortcut (whole subtree; subtree minus the
    // enveloped Signature) gives the same bytes too.
    dsig::detail::set_plain_set_c14n(false);
    const std::string with_callback = sign_all(true);
    dsig::detail::set_plain_set_c14n(true);
    REQUIRE(fast == with_callback);

    // And each verifies the other's output (the school seal is ECDSA, not reproducible).
    for (bool subtree : {false, true}) {
        dsig::detail::set_subtree_c14n(subtree);
        auto doc = dsig::Document::parse(fast);
        for (const char* year : {kYear, kYear2}) {
            policies::check_order(doc, Stage::school, year, std::nullopt);
            doc.add_signature(Stage::school, year, std::nullopt, stage_signer(Stage::school),
                              fixed_time());
        }
        dsig::detail::set_subtree_c14n(!subtree);
        auto again = dsig::Document::parse(doc.serialize());
        REQUIRE(again.report().signatures.size() == 30);
        CHECK(again.report().verdict() == dsig::Report::Verdict::valid);
        for (const auto& s : again.report().signatures) {
            INFO(s.id << (s.problems.empty() ? "" : ": " + s.problems.front()));
            CHECK(s.valid);
        }
    }
    dsig::detail::set_subtree_c14n(true);
}

namespace {

bool valid_everywhere(const std::string& xml, std::size_t count) {
    auto doc = dsig::Document::parse(xml);
    const auto& sigs = doc.report().signatures;
    if (sigs.size() != count) return false;
    for (const auto& s : sigs)
        if (!s.valid || !s.in_order) return false;
    return true;
}

}  // namespace

TEST_CASE("a new signature is written into the text the signer sent, which stays as it was") {
    const std::string input = hand_written();
    auto doc = dsig::Document::parse(input);
    doc.add_signature(Stage::subject_teacher, kYear, "TOAN",
                      stage_signer(Stage::subject_teacher, "TOAN"), fixed_time());
    const std::string out = doc.serialize();

    // Everything before and after the new ds:Signature is the input, byte for byte; it sits
    // just before TOAN's </MonHoc>. (Writing the tree out would have normalised all four.)
    const std::string sig = signature_text(out, sig_id(Stage::subject_teacher, kYear, "TOAN"));
    const std::size_t at = out.find(sig);
    REQUIRE(at != std::string::npos);
    CHECK(out.size() == input.size() + sig.size());
    CHECK(out.compare(0, at, input, 0, at) == 0);
    CHECK(out.compare(at + sig.size(), std::string::npos, input, at, std::string::npos) == 0);
    CHECK(input.compare(at, 9, "</MonHoc>") == 0);
    CHECK(input.rfind("Ma=\"TOAN\"", at) > input.rfind("<MonHoc ", at) - 1);
    CHECK(out.starts_with("<?xml version='1.0' encoding='utf-8'?>\r\n"));
    CHECK(out.find("Ten='To&#225;n'") != std::string::npos);
    CHECK(valid_everywhere(out, 1));

    // The other subjects, then the homeroom teacher into the empty-element <ChuKy/>; each
    // on a fresh parse of the last output, as hbsd signs them.
    std::string xml = out;
    for (const auto& s : kSubjects) {
        if (s == "TOAN") continue;
        auto d = dsig::Document::parse(xml);
        d.add_signature(Stage::subject_teacher, kYear, s, stage_signer(Stage::subject_teacher, s),
                        fixed_time());
        xml = d.serialize();
    }
    auto d = dsig::Document::parse(xml);
    d.add_signature(Stage::homeroom_teacher, kYear, std::nullopt,
                    stage_signer(Stage::homeroom_teacher), fixed_time());
    const std::string with_gvcn = d.serialize();
    const std::string gvcn = signature_text(with_gvcn, sig_id(Stage::homeroom_teacher));
    CHECK(with_gvcn == replace_once(xml, "<ChuKy/>", "<ChuKy>" + gvcn + "</ChuKy>"));
    CHECK(valid_everywhere(with_gvcn, kSubjects.size() + 1));
}

TEST_CASE("a Document given two new signatures is written out whole, and verifies") {
    auto doc = dsig::Document::parse(hand_written());
    doc.add_signature(Stage::subject_teacher, kYear, "TOAN",
                      stage_signer(Stage::subject_teacher, "TOAN"), fixed_time());
    doc.add_signature(Stage::subject_teacher, kYear, kSubjects[1],
                      stage_signer(Stage::subject_teacher, kSubjects[1]), fixed_time());
    const std::string out = doc.serialize();
    CHECK(out.starts_with(R"(<?xml version="1.0" encoding="UTF-8"?>)"
                          "\n"));
    CHECK(out.find('\r') == std::string::npos);
    CHECK(valid_everywhere(out, 2));
}
