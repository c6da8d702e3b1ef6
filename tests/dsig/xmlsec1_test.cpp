// Independent verification: the xmlsec1 command line (its own OpenSSL transforms, chain check
// against the test CA) accepts every signature we make, one by one.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "catch.hpp"
#include "dsig/document.hpp"
#include "support.hpp"

using namespace hbsd;
using namespace hbsd::test;
using dsig::Stage;

namespace {

// xmlsec1 needs to be told which attributes are IDs (we have no DTD, on purpose). The
// namespace and the local name are split at the last ':', so URN namespaces work as is.
const char* const kIdAttrs[] = {
    "urn:vn:hocbaso:1:HocBa",
    "urn:vn:hocbaso:1:HocSinh",
    "urn:vn:hocbaso:1:ThongTinNamHoc",
    "urn:vn:hocbaso:1:KetQua",
    "urn:vn:hocbaso:1:MonHoc",
    "http://www.w3.org/2000/09/xmldsig#:Signature",
    "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
};

std::string xmlsec1_command(const std::filesystem::path& file, const std::string& id) {
    std::string cmd = std::string("'") + XMLSEC1 + "' --verify --enabled-reference-uris same-doc";
    cmd += " --trusted-pem '" + (pki_dir() / "ca.pem").string() + "'";
    for (const char* a : kIdAttrs) cmd += std::string(" --id-attr:Id '") + a + "'";
    cmd += " --node-id '" + id + "' '" + file.string() + "'";
    return cmd;
}

// Exit status of xmlsec1 --verify for one signature of `xml`.
int xmlsec1_verify(const std::string& xml, const std::string& id) {
    auto file = std::filesystem::temp_directory_path() /
                ("hbsd-dsig-xmlsec1-" + std::to_string(::getpid()) + ".xml");
    {
        std::ofstream out(file, std::ios::binary);
        out << xml;
    }
    std::string cmd = xmlsec1_command(file, id) + " >/dev/null 2>&1";
    int rc = std::system(cmd.c_str());
    std::filesystem::remove(file);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void all_verify(const std::string& xml, std::size_t expected) {
    auto doc = dsig::Document::parse(xml);
    REQUIRE(doc.report().signatures.size() == expected);
    for (const auto& s : doc.report().signatures) {
        INFO(xmlsec1_command("FILE", s.id));
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
