// policies::check_order: every reason, from both the Document (lazy) and the Report.
#include "policies/order.hpp"
#include "tests/support/catch.hpp"
#include "dsig/document.hpp"
#include "support.hpp"

using namespace hbsd;
using namespace hbsd::test;
using dsig::Stage;

namespace {

struct Outcome {
    Errc code;
    std::string reason;  // PolicyViolation reason
    std::string detail;
};

std::optional<Outcome> run(const std::string& xml, Stage stage,
                           std::optional<std::string_view> subject = std::nullopt,
                           const std::string& year = kYear) {
    auto doc = dsig::Document::parse(xml);
    std::optional<Outcome> a, b;
    try {
        policies::check_order(doc, stage, year, subject);
    } catch (const Error& e) {
        a = Outcome{e.code(), param(e, "reason"), param(e, "detail")};
    }
    auto fresh = dsig::Document::parse(xml);
    try {
        policies::check_order(fresh.report(), stage, year, subject);
    } catch (const Error& e) {
        b = Outcome{e.code(), param(e, "reason"), param(e, "detail")};
    }
    REQUIRE(a.has_value() == b.has_value());
    if (a) {
        CHECK(a->code == b->code);
        CHECK(a->reason == b->reason);
    }
    return a;
}

std::string reason(const std::string& xml, Stage stage,
                   std::optional<std::string_view> subject = std::nullopt,
                   const std::string& year = kYear) {
    auto o = run(xml, stage, subject, year);
    if (!o) return "ok";
    if (o->code != Errc::PolicyViolation) return std::string(error_name(o->code));
    return o->reason;
}

const std::string& teachers() {
    static const std::string s = sign_year(fixture(), kYear, Stage::homeroom_teacher);
    return s;
}
const std::string& homeroom() {
    static const std::string s = sign_year(fixture(), kYear, Stage::principal);
    return s;
}
const std::string& principal() {
    static const std::string s = sign_year(fixture(), kYear, Stage::school);
    return s;
}

// Changes the SigningTime inside one signature (breaks its SignedProperties digest).
std::string break_signature(const std::string& xml, const std::string& id) {
    std::string sig = signature_text(xml, id);
    return replace_once(xml, sig, replace_once(sig, "2025-05-30T08", "2025-05-30T09"));
}

}  // namespace

TEST_CASE("order: requests that do not fit the document") {
    CHECK(reason(fixture(), Stage::homeroom_teacher, std::nullopt, "2099-2100") ==
          "vn.hocbaso.Signer.InvalidDocument");
    CHECK(reason(fixture(), Stage::subject_teacher, "VATLY") ==
          "vn.hocbaso.Signer.InvalidDocument");
    CHECK(reason(fixture(), Stage::subject_teacher) == "org.varlink.service.InvalidParameter");
    CHECK(reason(fixture(), Stage::principal, "TOAN") == "org.varlink.service.InvalidParameter");
}

TEST_CASE("order: subject teachers") {
    CHECK(reason(fixture(), Stage::subject_teacher, "TOAN") == "ok");
    CHECK(reason(teachers(), Stage::subject_teacher, "TOAN") == "already_signed");
    // Closed once the homeroom teacher has signed (it would break the homeroom's digest).
    std::string no_gddp_but_homeroom = [] {
        auto doc =
            dsig::Document::parse(sign_year(fixture(), kYear, Stage::homeroom_teacher, "GDDP"));
        // add_signature itself does not judge completeness: that is check_order's job.
        doc.add_signature(Stage::homeroom_teacher, kYear, std::nullopt,
                          stage_signer(Stage::homeroom_teacher), fixed_time());
        return doc.serialize();
    }();
    CHECK(reason(no_gddp_but_homeroom, Stage::subject_teacher, "GDDP") == "order");
    // A teacher's signing does not depend on the other teachers' signatures being valid.
    std::string broken =
        break_signature(sign_year(fixture(), kYear, Stage::homeroom_teacher, "GDDP"),
                        sig_id(Stage::subject_teacher, kYear, "TOAN"));
    CHECK(reason(broken, Stage::subject_teacher, "GDDP") == "ok");
}

TEST_CASE("order: homeroom teacher") {
    auto o =
        run(sign_year(fixture(), kYear, Stage::homeroom_teacher, "LSDL"), Stage::homeroom_teacher);
    REQUIRE(o);
    CHECK(o->reason == "order");
    CHECK(o->detail == "subjects of 2024-2025 not yet signed: LSDL");
    CHECK(reason(teachers(), Stage::homeroom_teacher) == "ok");
    auto bad = run(break_signature(teachers(), sig_id(Stage::subject_teacher, kYear, "KHTN")),
                   Stage::homeroom_teacher);
    REQUIRE(bad);
    CHECK(bad->reason == "earlier_invalid");
    CHECK(bad->detail.find(sig_id(Stage::subject_teacher, kYear, "KHTN")) != std::string::npos);
    CHECK(reason(homeroom(), Stage::homeroom_teacher) == "already_signed");
}

TEST_CASE("order: principal and school") {
    CHECK(reason(teachers(), Stage::principal) == "order");
    CHECK(reason(homeroom(), Stage::principal) == "ok");
    CHECK(reason(break_signature(homeroom(), sig_id(Stage::homeroom_teacher)), Stage::principal) ==
          "earlier_invalid");
    CHECK(reason(break_signature(homeroom(), sig_id(Stage::subject_teacher, kYear, "TOAN")),
                 Stage::principal) == "earlier_invalid");
    CHECK(reason(homeroom(), Stage::school) == "order");
    CHECK(reason(principal(), Stage::school) == "ok");
    CHECK(reason(break_signature(principal(), sig_id(Stage::principal)), Stage::school) ==
          "earlier_invalid");
    CHECK(reason(principal(), Stage::principal) == "already_signed");
    CHECK(reason(fully_signed(), Stage::school) == "already_signed");
    // A later stage present makes an earlier one "order", not signable again.
    CHECK(reason(fully_signed(), Stage::subject_teacher, "TOAN") == "already_signed");
}

TEST_CASE("order: years are independent") {
    std::string two = with_second_year(fully_signed());
    CHECK(reason(two, Stage::subject_teacher, "TOAN", kYear2) == "ok");
    CHECK(reason(two, Stage::homeroom_teacher, std::nullopt, kYear2) == "order");
    CHECK(reason(two, Stage::school, std::nullopt, kYear) == "already_signed");
}
