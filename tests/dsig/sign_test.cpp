// Signing through all four stages, across two years, and what the signer callback may do.
#include <thread>

#include "catch.hpp"

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
