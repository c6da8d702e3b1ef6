// Lowercase hex, and hex SHA-256, for every module: fingerprints (certificate DER), document
// and signature hashes in the audit log, ATRs, session ids. They live beside the error type
// because hsm/, dsig/ and store/ all link it and none of them may link another.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace hbsd {

std::string to_hex(std::span<const unsigned char> bytes);
// Internal if OpenSSL cannot digest (it does not fail for SHA-256 short of a broken library).
std::string sha256_hex(std::span<const unsigned char> bytes);
std::string sha256_hex(std::string_view text);

}  // namespace hbsd
