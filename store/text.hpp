// Small text helpers shared by the store's parts (and the daemon): hex, hex SHA-256 and
// RFC 3339 UTC times.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>

namespace hbsd::store {

// Lowercase hex of `bytes`.
std::string to_hex(std::span<const unsigned char> bytes);
std::string sha256_hex(std::span<const unsigned char> bytes);
std::string sha256_hex(std::string_view text);
// Whole seconds, UTC, e.g. "2026-11-30T00:07:18Z".
std::string rfc3339(std::chrono::system_clock::time_point t);
std::string now_rfc3339();
// True for exactly 64 lowercase hex digits.
bool is_sha256_hex(std::string_view s) noexcept;

}  // namespace hbsd::store
