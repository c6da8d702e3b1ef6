// Independent verification: the xmlsec1 command line (its own OpenSSL transforms, chain check
// against the test CA) accepts every signature we make, one by one.
#include <filesystem>

#include "dsig/document.hpp"
#include "support.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/xmlsec1.hpp"

using namespace hbsd;
using namespace hbsd::test;
using dsig::Stage;

namespace {

int xmlsec1_verify(const std::string& xml, const std::string& id) {
    return test::xmlsec1_verify(xml, id, pki_dir() / "ca.pem");
}

void all_verify(const std::string& xml, std::size_t expected) {
    auto doc = dsig::Document::parse(xml);
    REQUIRE(doc.report().signatures.size() == expected);
    for (const auto& s : doc.report().signatures) {
        INFO(test::xmlsec1_command("FILE", s.id, pki_dir() / "ca.pem"));
        CHECK(xmlsec1_verify(xml, s.id) == 0);
    }
}

}  // namespace

TEST_CASE("xmlsec1 --verify accepts every signature of the fully signed record") {
    all_verify(fully_signed(), 15);
}

TEST_CASE("xmlsec1 --verify accepts every signature of both years after the second is signed") {
    all_verify(sign_year(with_second_year(fully_signed()), kYear2), 30);
}

TEST_CASE("xmlsec1 --verify accepts signatures written into a hand-written text, one by one") {
    // CRLF, single quotes and a character reference kept as sent (Document::serialize writes
    // each new signature into the text it parsed); the same Ids and order as the fixture.
    const std::string xml = sign_year_by_requests(hand_written(), kYear);
    CHECK(xml.find("Ten='To&#225;n'") != std::string::npos);
    all_verify(xml, 15);
}

TEST_CASE("xmlsec1 --verify accepts a P-384 signature") {
    auto doc = dsig::Document::parse(fixture());
    doc.add_signature(Stage::subject_teacher, kYear, "TOAN", signer("extra-p384"), fixed_time());
    all_verify(doc.serialize(), 1);
}

TEST_CASE("xmlsec1 --verify rejects what we reject (the check is not vacuous)") {
    std::string xml =
        replace_once(fully_signed(), "<DiemHK1>8.5</DiemHK1>", "<DiemHK1>9.5</DiemHK1>");
    CHECK(xmlsec1_verify(xml, sig_id(Stage::subject_teacher, kYear, "TOAN")) != 0);
    CHECK(xmlsec1_verify(xml, sig_id(Stage::homeroom_teacher)) != 0);
    CHECK(xmlsec1_verify(xml, sig_id(Stage::subject_teacher, kYear, "NGUVAN")) == 0);
}
