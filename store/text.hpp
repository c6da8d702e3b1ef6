// Small text helpers shared by the store's parts (and the daemon): RFC 3339 UTC times and the
// shape of a hex SHA-256 (protocol/hex.hpp makes them).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace hbsd::store {

// Whole seconds, UTC, e.g. "2026-11-30T00:07:18Z".
std::string rfc3339(std::chrono::system_clock::time_point t);
std::string now_rfc3339();
// True for exactly 64 lowercase hex digits.
bool is_sha256_hex(std::string_view s) noexcept;

}  // namespace hbsd::store
