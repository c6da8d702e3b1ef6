// Verification is profile-driven: what breaks a signature, and what Sign refuses after it.
#include <algorithm>

#include "dsig/document.hpp"
#include "policies/order.hpp"
#include "support.hpp"
#include "tests/support/catch.hpp"

using namespace hbsd;
using namespace hbsd::test;
using dsig::Stage;

namespace {

const dsig::SignatureReport& find_sig(const dsig::Report& r, const std::string& id) {
    for (const auto& s : r.signatures)
        if (s.id == id) return s;
    FAIL("no signature " << id);
    throw;
}

bool has_problem(const dsig::SignatureReport& s, std::string_view needle) {
    return std::any_of(s.problems.begin(), s.problems.end(),
                       [&](const std::string& p) { return p.find(needle) != std::string::npos; });
}

std::string all_problems(const dsig::SignatureReport& s) {
    std::string out;
    for (const auto& p : s.problems) out += p + " | ";
    return out;
}

// The Sign policy's answer for (stage, subject) on `xml`: "" when allowed, else the
// PolicyViolation reason or the error name.
std::string order_verdict(const std::string& xml, Stage stage,
                          std::optional<std::string_view> subject = std::nullopt,
                          const std::string& year = kYear) {
    auto doc = dsig::Document::parse(xml);
    try {
        policies::check_order(doc, stage, year, subject);
    } catch (const Error& e) {
        // The Report overload must agree with the Document one.
        std::string via_report;
        try {
            policies::check_order(doc.report(), stage, year, subject);
        } catch (const Error& e2) {
            via_report = e2.code() == Errc::PolicyViolation ? param(e2, "reason")
                                                            : std::string(error_name(e2.code()));
        }
        std::string r = e.code() == Errc::PolicyViolation ? param(e, "reason")
                                                          : std::string(error_name(e.code()));
        CHECK(via_report == r);
        return r;
    }
    CHECK_NOTHROW(policies::check_order(doc.report(), stage, year, subject));
    return "";
}

const std::string& teachers_signed() {
    static const std::string s = sign_year(fixture(), kYear, Stage::homeroom_teacher);
    return s;
}

const std::string toan = sig_id(Stage::subject_teacher, kYear, "TOAN");
const std::string nguvan = sig_id(Stage::subject_teacher, kYear, "NGUVAN");

}  // namespace

TEST_CASE(
    "a score changed after signing invalidates the teacher's signature, and Sign refuses the next "
    "stage") {
    std::string xml =
        replace_once(teachers_signed(), "<DiemHK1>8.5</DiemHK1>", "<DiemHK1>9.5</DiemHK1>");
    auto doc = dsig::Document::parse(xml);
    const auto& s = find_sig(doc.report(), toan);
    INFO(all_problems(s));
    CHECK_FALSE(s.valid);
    CHECK(has_problem(s, "digest mismatch: Reference #MH-94000123-2024-0001-2024-2025-TOAN"));
    CHECK(find_sig(doc.report(), nguvan).valid);
    CHECK(doc.report().verdict() == dsig::Report::Verdict::invalid);
    CHECK(order_verdict(xml, Stage::homeroom_teacher) == "earlier_invalid");

    // On the fully signed record the same change breaks TOAN and everything above it.
    std::string all =
        replace_once(fully_signed(), "<DiemHK1>8.5</DiemHK1>", "<DiemHK1>9.5</DiemHK1>");
    auto doc2 = dsig::Document::parse(all);
    CHECK_FALSE(find_sig(doc2.report(), toan).valid);
    const auto& gvcn = find_sig(doc2.report(), sig_id(Stage::homeroom_teacher));
    CHECK_FALSE(gvcn.valid);
    CHECK(has_problem(gvcn, "digest mismatch: Reference #KQ-"));
    CHECK_FALSE(find_sig(doc2.report(), sig_id(Stage::principal)).valid);
}

TEST_CASE("a teacher signature moved to another subject's MonHoc is invalid there") {
    std::string base = sign_year(fixture(), kYear, Stage::homeroom_teacher, "NGUVAN");
    std::string sig = signature_text(base, toan);
    std::string moved = replace_once(base, sig, "");
    // NGUVAN's MonHoc is the second one: put the signature at its end.
    auto p = moved.find("</MonHoc>", moved.find("Ma=\"NGUVAN\""));
    moved.insert(p, sig);
    auto doc = dsig::Document::parse(moved);
    const auto& s = find_sig(doc.report(), toan);
    REQUIRE(s.subject == "NGUVAN");  // reported at the place it sits
    CHECK_FALSE(s.valid);
    CHECK(has_problem(s, "where the profile requires \"" + nguvan + "\""));
    // TOAN is now missing, NGUVAN holds garbage: the homeroom may not sign; NGUVAN's own
    // teacher may not sign either (its place is taken).
    CHECK(order_verdict(moved, Stage::homeroom_teacher) == "order");
    CHECK(order_verdict(moved, Stage::subject_teacher, "NGUVAN") == "already_signed");
    // A copy (the original still in place) is a duplicate Id: not even a valid document.
    std::string copied = base;
    copied.insert(copied.find("</MonHoc>", copied.find("Ma=\"NGUVAN\"")), sig);
    Error e = [&] {
        try {
            (void)dsig::Document::parse(copied);
        } catch (const Error& err) {
            return err;
        }
        FAIL("parsed");
        throw;
    }();
    CHECK(e.code() == Errc::InvalidDocument);
    CHECK(param(e, "reason").find("duplicate Id") == 0);
}

TEST_CASE(
    "a signature copied into another year, renamed to the Id expected there, does not match") {
    std::string xml = with_second_year(teachers_signed());
    std::string sig = signature_text(xml, toan);
    std::string toan2 = sig_id(Stage::subject_teacher, kYear2, "TOAN");
    std::string renamed = sig;
    for (std::size_t p = renamed.find(toan); p != std::string::npos; p = renamed.find(toan, p))
        renamed.replace(p, toan.size(), toan2);
    auto second = xml.find("<NamHoc Nam=\"2025-2026\">");
    xml.insert(xml.find("</MonHoc>", second), renamed);
    auto doc = dsig::Document::parse(xml);
    const auto& s = find_sig(doc.report(), toan2);
    INFO(all_problems(s));
    CHECK_FALSE(s.valid);
    CHECK(has_problem(s,
                      "Reference URI \"#MH-94000123-2024-0001-2024-2025-TOAN\" where the "
                      "profile requires \"#MH-94000123-2024-0001-2025-2026-TOAN\""));
    CHECK(find_sig(doc.report(), toan).valid);  // the original is untouched
}

TEST_CASE("tampered SignedProperties: SigningTime, ClaimedRole, Target") {
    const std::string& base = teachers_signed();
    std::string sig = signature_text(base, toan);

    auto with = [&](const std::string& from, const std::string& to) {
        return replace_once(base, sig, replace_once(sig, from, to));
    };
    {
        auto doc = dsig::Document::parse(with("2025-05-30T08:00:00Z", "2025-05-29T08:00:00Z"));
        const auto& s = find_sig(doc.report(), toan);
        CHECK_FALSE(s.valid);
        CHECK(has_problem(s, "digest mismatch: Reference #" + toan + "-SP"));
    }
    {
        auto doc = dsig::Document::parse(with(">subject_teacher<", ">principal<"));
        const auto& s = find_sig(doc.report(), toan);
        CHECK_FALSE(s.valid);
        CHECK(
            has_problem(s, "ClaimedRole \"principal\" does not match the place (subject_teacher)"));
    }
    {
        auto doc = dsig::Document::parse(with("Target=\"#", "Target=\"#X"));
        const auto& s = find_sig(doc.report(), toan);
        CHECK_FALSE(s.valid);
        CHECK(has_problem(s, "QualifyingProperties/@Target"));
    }
    {
        // An attribute the profile does not know, even an unsigned one.
        auto doc = dsig::Document::parse(with("<ds:Object>", "<ds:Object Id=\"extra\">"));
        const auto& s = find_sig(doc.report(), toan);
        CHECK_FALSE(s.valid);
        CHECK(has_problem(s, "ds:Object carries attributes"));
        auto doc2 =
            dsig::Document::parse(with("<xades:ClaimedRole>", "<xades:ClaimedRole a=\"b\">"));
        CHECK_FALSE(find_sig(doc2.report(), toan).valid);
    }
    {
        // SigningCertificateV2 pointing at another certificate than KeyInfo's.
        auto doc = dsig::Document::parse(
            with("<ds:DigestValue>", "<ds:DigestValue>AAAA"));  // first DigestValue: MH ref
        CHECK_FALSE(find_sig(doc.report(), toan).valid);
    }
}

TEST_CASE("References: only the profile's URIs and transforms") {
    const std::string& base = teachers_signed();
    std::string sig = signature_text(base, toan);
    const std::string env =
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>";
    auto check_invalid = [&](const std::string& changed, std::string_view problem) {
        auto doc = dsig::Document::parse(replace_once(base, sig, changed));
        const auto& s = find_sig(doc.report(), toan);
        INFO(all_problems(s));
        CHECK_FALSE(s.valid);
        CHECK(has_problem(s, problem));
    };
    SECTION("an XPath transform") {
        check_invalid(
            replace_once(sig, env,
                         env + "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/"
                               "REC-xpath-19991116\"><ds:XPath>1</ds:XPath></ds:Transform>"),
            "has transforms other than the profile's");
    }
    SECTION("a base64 transform") {
        check_invalid(
            replace_once(
                sig, env,
                env + "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#base64\"/>"),
            "has transforms other than the profile's");
    }
    SECTION("an XSLT transform instead of the enveloped one") {
        check_invalid(replace_once(sig, env,
                                   "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/"
                                   "REC-xslt-19991116\"/>"),
                      "must start with the enveloped-signature transform");
    }
    SECTION("the enveloped transform on another Reference") {
        const std::string hs_ref = "<ds:Reference URI=\"#HS-94000123-2024-0001\"><ds:Transforms>";
        check_invalid(replace_once(sig, hs_ref, hs_ref + env), "has transforms other than");
    }
    SECTION("an empty URI") {
        check_invalid(replace_once(sig, "URI=\"#HS-94000123-2024-0001\"", "URI=\"\""),
                      "Reference URI \"\" where the profile requires \"#HS-94000123-2024-0001\"");
    }
    SECTION("a missing URI") {
        check_invalid(replace_once(sig, " URI=\"#HS-94000123-2024-0001\"", ""),
                      "Reference URI \"(none)\"");
    }
    SECTION("an external URI") {
        check_invalid(
            replace_once(sig, "URI=\"#HS-94000123-2024-0001\"", "URI=\"file:///etc/passwd\""),
            "Reference URI \"file:///etc/passwd\"");
        check_invalid(replace_once(sig, "URI=\"#HS-94000123-2024-0001\"",
                                   "URI=\"http://example.org/x#HS-94000123-2024-0001\""),
                      "Reference URI \"http://example.org/");
    }
    SECTION("an XPointer URI") {
        check_invalid(replace_once(sig, "URI=\"#HS-94000123-2024-0001\"", "URI=\"#xpointer(/)\""),
                      "Reference URI \"#xpointer(/)\"");
    }
    SECTION("a Reference too many, one too few") {
        auto b = sig.find("<ds:Reference URI=\"#HS-");
        auto e = sig.find("</ds:Reference>", b) + 15;
        std::string ref = sig.substr(b, e - b);
        check_invalid(replace_once(sig, ref, ""), "Reference URI \"#TT-");
        check_invalid(replace_once(sig, ref, ref + ref), "Reference URI \"#HS-");
    }
    SECTION("another canonicalisation") {
        check_invalid(
            replace_once(sig,
                         "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/"
                         "xml-exc-c14n#\"/>",
                         "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/"
                         "REC-xml-c14n-20010315#WithComments\"/>"),
            "CanonicalizationMethod must be exclusive C14N");
    }
    SECTION("another signature method") {
        check_invalid(replace_once(sig, "xmldsig-more#rsa-sha256", "xmldsig-more#rsa-sha512"),
                      "SignatureMethod must be rsa-sha256 or ecdsa-sha256");
        check_invalid(replace_once(sig, "xmldsig-more#rsa-sha256", "xmldsig-more#ecdsa-sha256"),
                      "SignatureMethod does not fit the certificate's key");
    }
}

TEST_CASE("a signature value that does not verify") {
    const std::string& base = teachers_signed();
    std::string sig = signature_text(base, toan);
    auto b = sig.find("<ds:SignatureValue>") + 19;
    std::string changed = sig;
    changed[b] = changed[b] == 'A' ? 'B' : 'A';
    auto doc = dsig::Document::parse(replace_once(base, sig, changed));
    const auto& s = find_sig(doc.report(), toan);
    CHECK_FALSE(s.valid);
    CHECK(has_problem(s, "SignatureValue does not verify"));
}

TEST_CASE("another certificate in KeyInfo") {
    const std::string& base = teachers_signed();
    std::string sig = signature_text(base, toan);
    std::string other = signature_text(base, nguvan);
    auto cert = [](const std::string& s) {
        auto b = s.find("<ds:X509Certificate>");
        return s.substr(b, s.find("</ds:X509Certificate>") - b);
    };
    auto doc =
        dsig::Document::parse(replace_once(base, sig, replace_once(sig, cert(sig), cert(other))));
    const auto& s = find_sig(doc.report(), toan);
    CHECK_FALSE(s.valid);
    CHECK(has_problem(s, "SigningCertificateV2 does not match the KeyInfo certificate"));
}

TEST_CASE("stage order, already signed") {
    // homeroom before all subjects
    std::string eleven = sign_year(fixture(), kYear, Stage::homeroom_teacher, "GDDP");
    CHECK(order_verdict(eleven, Stage::homeroom_teacher) == "order");
    CHECK(order_verdict(eleven, Stage::subject_teacher, "GDDP") == "");
    // principal before homeroom, school before principal
    CHECK(order_verdict(teachers_signed(), Stage::principal) == "order");
    CHECK(order_verdict(teachers_signed(), Stage::school) == "order");
    CHECK(order_verdict(teachers_signed(), Stage::homeroom_teacher) == "");
    {
        auto doc = dsig::Document::parse(teachers_signed());
        try {
            doc.add_signature(Stage::principal, kYear, std::nullopt, stage_signer(Stage::principal),
                              fixed_time());
            FAIL("signed out of order");
        } catch (const Error& e) {
            CHECK(param(e, "reason") == "order");
        }
    }
    // already signed
    CHECK(order_verdict(teachers_signed(), Stage::subject_teacher, "TOAN") == "already_signed");
    CHECK(order_verdict(fully_signed(), Stage::school) == "already_signed");
    CHECK(order_verdict(fully_signed(), Stage::homeroom_teacher) == "already_signed");
    // a teacher after the homeroom
    std::string homeroom = sign_year(fixture(), kYear, Stage::principal);
    CHECK(order_verdict(homeroom, Stage::principal) == "");
    auto doc = dsig::Document::parse(homeroom);
    for (Stage st : {Stage::homeroom_teacher, Stage::subject_teacher}) {
        try {
            doc.add_signature(st, kYear,
                              st == Stage::subject_teacher ? std::optional<std::string_view>("TOAN")
                                                           : std::nullopt,
                              stage_signer(st, "TOAN"), fixed_time());
            FAIL("signed twice");
        } catch (const Error& e) {
            CHECK(param(e, "reason") == "already_signed");
        }
    }
}

TEST_CASE("the signer callback: its errors propagate and nothing changes") {
    auto doc = dsig::Document::parse(fixture());
    const std::string before = doc.serialize();
    dsig::Signer s = stage_signer(Stage::subject_teacher, "TOAN");
    dsig::Signer failing = s;
    failing.sign_digest = [](std::span<const unsigned char> d) -> std::vector<unsigned char> {
        CHECK(d.size() == 32);
        throw Error::pin_locked();
    };
    try {
        doc.add_signature(Stage::subject_teacher, kYear, "TOAN", failing, fixed_time());
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::PinLocked);
    }
    CHECK(doc.serialize() == before);
    CHECK(doc.report().signatures.empty());

    // The token signs with another key than the certificate's: refused, nothing changes.
    dsig::Signer wrong = s;
    wrong.sign_digest = stage_signer(Stage::subject_teacher, "NGUVAN").sign_digest;
    try {
        doc.add_signature(Stage::subject_teacher, kYear, "TOAN", wrong, fixed_time());
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::PolicyViolation);
        CHECK(param(e, "reason") == "wrong_key");
    }
    CHECK(doc.serialize() == before);

    // Garbage of the wrong length.
    dsig::Signer garbage = s;
    garbage.sign_digest = [](std::span<const unsigned char>) {
        return std::vector<unsigned char>(7, 1);
    };
    CHECK_THROWS_AS(doc.add_signature(Stage::subject_teacher, kYear, "TOAN", garbage, fixed_time()),
                    Error);
    CHECK(doc.serialize() == before);

    // And afterwards the same document signs fine.
    auto rep = doc.add_signature(Stage::subject_teacher, kYear, "TOAN", s, fixed_time());
    CHECK(rep.valid);
    CHECK(rep.in_order);
    CHECK(rep.id == toan);
}

TEST_CASE("certificates the profile refuses, and P-384") {
    auto doc = dsig::Document::parse(fixture());
    dsig::Signer s = stage_signer(Stage::subject_teacher, "TOAN");
    s.certificate_der = {1, 2, 3};
    try {
        doc.add_signature(Stage::subject_teacher, kYear, "TOAN", s, fixed_time());
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Errc::CertificateInvalid);
    }
    // ECDSA P-384 (ecdsa-sha256 over P-384 with r||s of 2 x 48 bytes).
    auto rep = doc.add_signature(Stage::subject_teacher, kYear, "TOAN", signer("extra-p384"),
                                 fixed_time());
    CHECK(rep.valid);
    auto again = dsig::Document::parse(doc.serialize());
    const auto* s2 = again.signature(Stage::subject_teacher, kYear, "TOAN");
    REQUIRE(s2 != nullptr);
    INFO(all_problems(*s2));
    CHECK(s2->valid);
    CHECK(s2->signature_value_sha256 == rep.signature_value_sha256);
    CHECK(s2->fingerprint == rep.fingerprint);
}

TEST_CASE("unknown year or subject, subject given to the wrong stage") {
    auto doc = dsig::Document::parse(fixture());
    auto code_of = [&](Stage st, std::string year, std::optional<std::string_view> subject) {
        try {
            doc.add_signature(st, year, subject, stage_signer(Stage::homeroom_teacher),
                              fixed_time());
        } catch (const Error& e) {
            return std::string(error_name(e.code()));
        }
        return std::string("signed");
    };
    CHECK(code_of(Stage::homeroom_teacher, "2030-2031", std::nullopt) ==
          "vn.hocbaso.Signer.InvalidDocument");
    CHECK(code_of(Stage::subject_teacher, kYear, "HOAHOC") == "vn.hocbaso.Signer.InvalidDocument");
    CHECK(code_of(Stage::subject_teacher, kYear, std::nullopt) ==
          "org.varlink.service.InvalidParameter");
    CHECK(code_of(Stage::homeroom_teacher, kYear, "TOAN") ==
          "org.varlink.service.InvalidParameter");
    CHECK(order_verdict(fixture(), Stage::homeroom_teacher, std::nullopt, "2030-2031") ==
          "vn.hocbaso.Signer.InvalidDocument");
    CHECK(order_verdict(fixture(), Stage::subject_teacher, "HOAHOC") ==
          "vn.hocbaso.Signer.InvalidDocument");
}

TEST_CASE("serialise and parse again: byte-identical, still valid") {
    const std::string& xml = fully_signed();
    auto doc = dsig::Document::parse(xml);
    CHECK(doc.serialize() == xml);
    CHECK(doc.report().verdict() == dsig::Report::Verdict::valid);
}

TEST_CASE("a second year appended and signed leaves every first-year signature valid") {
    const std::string& one = fully_signed();
    auto first = dsig::Document::parse(one);
    std::string two = sign_year(with_second_year(one), kYear2);
    auto doc = dsig::Document::parse(two);
    const auto& r = doc.report();
    REQUIRE(r.signatures.size() == 30);
    for (const auto& s : r.signatures) {
        INFO(s.id << ": " << all_problems(s));
        CHECK(s.valid);
        CHECK(s.in_order);
    }
    for (std::size_t i = 0; i < 15; ++i) {
        CHECK(r.signatures[i].year == kYear);
        CHECK(r.signatures[i].signature_value_sha256 ==
              first.report().signatures[i].signature_value_sha256);
        CHECK(r.signatures[15 + i].year == kYear2);
    }
    REQUIRE(r.years.size() == 2);
    CHECK(r.years[1].class_name == "7A1");
    CHECK(r.years[1].stage == Stage::school);
    CHECK(r.verdict() == dsig::Report::Verdict::valid);

    // Half-way through the second year: incomplete, every signature still valid.
    std::string partial = sign_year(with_second_year(one), kYear2, Stage::principal);
    auto p = dsig::Document::parse(partial);
    CHECK(p.years()[1].stage == Stage::homeroom_teacher);
    CHECK(p.report().verdict() == dsig::Report::Verdict::incomplete);
}

TEST_CASE("in_order reflects the document: a homeroom signature over a broken teacher signature") {
    std::string xml = replace_once(fully_signed(), "<NhanXet>Tích cực rèn luyện.</NhanXet>",
                                   "<NhanXet>Tích cực rèn luyện!</NhanXet>");
    auto doc = dsig::Document::parse(xml);
    const auto& r = doc.report();
    const auto& gdtc = find_sig(r, sig_id(Stage::subject_teacher, kYear, "GDTC"));
    CHECK_FALSE(gdtc.valid);
    CHECK(gdtc.in_order);  // nothing comes before a teacher
    const auto& ht = find_sig(r, sig_id(Stage::principal));
    CHECK_FALSE(ht.in_order);
    CHECK(has_problem(ht, "order: earlier signature " + gdtc.id + " is not valid"));
}
