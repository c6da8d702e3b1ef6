// The independent verifier: the xmlsec1 command line (its own OpenSSL code paths for references,
// c14n, digests and signature values, and its own chain check against a trusted root).
#pragma once

#include <filesystem>
#include <string>

namespace hbsd::test {

// The command that verifies signature `id` of the record in `file` against `ca_pem`.
std::string xmlsec1_command(const std::filesystem::path& file, const std::string& id,
                            const std::filesystem::path& ca_pem);

// Exit status of `xmlsec1 --verify` for one signature of `xml` (0: verified).
int xmlsec1_verify(const std::string& xml, const std::string& id,
                   const std::filesystem::path& ca_pem);

}  // namespace hbsd::test
