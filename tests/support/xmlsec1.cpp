#include "tests/support/xmlsec1.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>

namespace hbsd::test {
namespace {

// xmlsec1 must be told which attributes are IDs (records have no DTD, on purpose). It splits
// namespace and local name at the last ':', so URN namespaces work as they are.
const char* const kIdAttrs[] = {
    "urn:vn:hocbaso:1:HocBa",
    "urn:vn:hocbaso:1:HocSinh",
    "urn:vn:hocbaso:1:ThongTinNamHoc",
    "urn:vn:hocbaso:1:KetQua",
    "urn:vn:hocbaso:1:MonHoc",
    "http://www.w3.org/2000/09/xmldsig#:Signature",
    "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
};

}  // namespace

std::string xmlsec1_command(const std::filesystem::path& file, const std::string& id,
                            const std::filesystem::path& ca_pem) {
    std::string cmd = std::string("'") + XMLSEC1 + "' --verify --enabled-reference-uris same-doc";
    cmd += " --trusted-pem '" + ca_pem.string() + "'";
    for (const char* a : kIdAttrs) cmd += std::string(" --id-attr:Id '") + a + "'";
    cmd += " --node-id '" + id + "' '" + file.string() + "'";
    return cmd;
}

int xmlsec1_verify(const std::string& xml, const std::string& id,
                   const std::filesystem::path& ca_pem) {
    static std::atomic<int> counter{0};
    auto file = std::filesystem::temp_directory_path() /
                ("hbsd-xmlsec1-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter++) + ".xml");
    {
        std::ofstream out(file, std::ios::binary);
        out << xml;
    }
    const std::string cmd = xmlsec1_command(file, id, ca_pem) + " >/dev/null 2>&1";
    const int rc = std::system(cmd.c_str());
    std::filesystem::remove(file);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace hbsd::test
