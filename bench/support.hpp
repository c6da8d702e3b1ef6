// What the in-process benchmarks share: reading a file, running a set-up command, and timing
// a call repeatedly against the wall clock and this thread's CPU time.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "tests/support/temp_dir.hpp"

namespace hbsd::bench {

// The test PKI's year, and the token the in-process benchmarks make.
inline constexpr char kYear[] = "2024-2025";
inline constexpr char kToken[] = "hbsd-bench";
inline constexpr char kPin[] = "1234";

// A fresh directory under /tmp (named from `prefix`) holding a test PKI (pki/,
// tests/support/make-test-pki) and a SoftHSM2 token kToken with every key of it (hsm/,
// make-softhsm-token); SOFTHSM2_CONF points at it from now on. The caller removes it.
std::filesystem::path make_test_token(const std::string& prefix);

using test::read_file;
using test::run;  // through the shell; throws unless it exits 0

struct Rate {
    double wall = 0;  // calls per wall-clock second
    double cpu = 0;   // calls per second of this thread's CPU time (SoftHSM2 runs in-process)
};

// Calls f once to warm up (schema compile, first session, caches), then for `seconds`.
Rate rate(double seconds, const std::function<void()>& f);

}  // namespace hbsd::bench
