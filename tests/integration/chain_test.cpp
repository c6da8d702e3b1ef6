// The signing core end to end on a real token: the fixture record signed through all four
// stages with keys that live on a SoftHSM2 token (hsm/ does every private-key operation),
// every signature checked by our verifier and by the xmlsec1 command line, then a second
// year appended and signed without breaking the first.
#include <map>
#include <string>

#include "dsig/document.hpp"
#include "hsm/token_manager.hpp"
#include "policies/order.hpp"
#include "tests/dsig/support.hpp"
#include "tests/hsm/support.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/jdk_verify.hpp"
#include "tests/support/xmlsec1.hpp"

using namespace hbsd;
using dsig::Stage;

namespace {

constexpr char kPin[] = "1234";

// Signers over the token's keys, found by label (the PKI's person names).
class TokenSigners {
  public:
    TokenSigners() : tm_(std::vector<hsm::ModuleConfig>{hsm::test::SoftHsmToken::softhsm()}) {
        for (const auto& t : tm_.list_tokens())
            if (t.label == "hbsd-test") token_ = t.uri;
        REQUIRE_FALSE(token_.empty());
        login_.emplace(tm_.login(token_, kPin));
        for (const auto& k : tm_.list_keys(token_)) uris_[k.label] = k.uri;
    }

    dsig::Signer operator()(const std::string& label) {
        const auto key = tm_.find_key(*login_, uris_.at(label));
        const auto mech = key.algorithm == hsm::KeyAlgorithm::rsa ? hsm::Mechanism::rsa_pkcs1_sha256
                                                                  : hsm::Mechanism::ecdsa_sha256;
        return {key.certificate_der, [this, uri = key.uri, mech](std::span<const unsigned char> d) {
                    return tm_.sign(*login_, uri, mech, d);
                }};
    }

    // Signs every stage of `year`, each only after check_order allows it, as Sign does.
    std::string sign_year(const std::string& xml, const std::string& year) {
        auto doc = dsig::Document::parse(xml);
        const auto now = std::chrono::system_clock::now();
        // A copy: add_signature refreshes the year reports (and invalidates references into them).
        const auto subjects = doc.year(year)->subjects;
        for (const auto& s : subjects) {
            policies::check_order(doc, Stage::subject_teacher, year, s);
            doc.add_signature(Stage::subject_teacher, year, s, (*this)("gvbm-" + s), now);
        }
        for (auto [stage, label] :
             {std::pair{Stage::homeroom_teacher, "gvcn"}, std::pair{Stage::principal, "ht"},
              std::pair{Stage::school, "truong"}}) {
            policies::check_order(doc, stage, year, std::nullopt);
            doc.add_signature(stage, year, std::nullopt, (*this)(label), now);
        }
        return doc.serialize();
    }

  private:
    hsm::TokenManager tm_;
    std::string token_;
    std::optional<hsm::Login> login_;
    std::map<std::string, std::string> uris_;
};

// Every signature valid by our verifier and by xmlsec1; returns how many there are.
std::size_t check_all(const std::string& xml) {
    const auto doc = dsig::Document::parse(xml);
    const auto& report = doc.report();
    for (const auto& s : report.signatures) {
        INFO(s.id);
        CHECK(s.valid);
        CHECK(s.in_order);
        CHECK(s.problems.empty());
        INFO(test::xmlsec1_command("FILE", s.id, hsm::test::pki_dir() / "ca.pem"));
        CHECK(test::xmlsec1_verify(xml, s.id, hsm::test::pki_dir() / "ca.pem") == 0);
    }
    return report.signatures.size();
}

}  // namespace

TEST_CASE("the fixture signed through all four stages on a SoftHSM2 token verifies everywhere") {
    hsm::test::SoftHsmToken token;
    TokenSigners signers;

    const std::string one_year = signers.sign_year(test::fixture(), test::kYear);
    {
        const auto doc = dsig::Document::parse(one_year);
        CHECK(doc.report().verdict() == dsig::Report::Verdict::valid);
        REQUIRE(doc.year(test::kYear)->stage == Stage::school);
        // The school seal is the EC key; the others RSA: both algorithms went through hsm/.
        CHECK(one_year.find("xmldsig-more#ecdsa-sha256") != std::string::npos);
        CHECK(one_year.find("xmldsig-more#rsa-sha256") != std::string::npos);
    }
    CHECK(check_all(one_year) == 15);
    {
        // The JDK's XML-DSig and the XAdES-BES properties, independently of xmlsec.
        const auto jdk = test::jdk_verify(one_year, 15);
        INFO(jdk.output);
        CHECK(jdk.status == 0);
    }

    // A second year appended and signed: every first-year signature still verifies.
    const std::string two_years = signers.sign_year(test::with_second_year(one_year), test::kYear2);
    const auto doc = dsig::Document::parse(two_years);
    CHECK(doc.report().verdict() == dsig::Report::Verdict::valid);
    CHECK(check_all(two_years) == 30);
    {
        const auto jdk = test::jdk_verify(two_years, 30);
        INFO(jdk.output);
        CHECK(jdk.status == 0);
    }

    // The check is not vacuous: a changed score after signing fails in both verifiers.
    const std::string tampered =
        test::replace_once(two_years, "<DiemHK1>8.5</DiemHK1>", "<DiemHK1>9.5</DiemHK1>");
    const auto bad = dsig::Document::parse(tampered);
    CHECK(bad.report().verdict() == dsig::Report::Verdict::invalid);
    CHECK(test::xmlsec1_verify(tampered, test::sig_id(Stage::subject_teacher, test::kYear, "TOAN"),
                               hsm::test::pki_dir() / "ca.pem") != 0);
    const auto jdk = test::jdk_verify(tampered, 30);
    INFO(jdk.output);
    CHECK(jdk.status == 1);
    CHECK(jdk.output.find("FAIL " + test::sig_id(Stage::subject_teacher, test::kYear, "TOAN") +
                          ": core validation failed") != std::string::npos);
    // The second year's signatures cover nothing of the first year's results: still fine.
    CHECK(jdk.output.find("ok " + test::sig_id(Stage::school, test::kYear2)) != std::string::npos);
}
