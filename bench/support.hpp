// What the in-process benchmarks share: reading a file, running a set-up command, and timing
// a call repeatedly against the wall clock and this thread's CPU time.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace hbsd::bench {

std::string read_file(const std::filesystem::path& path);

// Runs `command` through the shell; throws std::runtime_error unless it exits 0.
void run(const std::string& command);

struct Rate {
    double wall = 0;  // calls per wall-clock second
    double cpu = 0;   // calls per second of this thread's CPU time (SoftHSM2 runs in-process)
};

// Calls f once to warm up (schema compile, first session, caches), then for `seconds`.
Rate rate(double seconds, const std::function<void()>& f);

}  // namespace hbsd::bench
