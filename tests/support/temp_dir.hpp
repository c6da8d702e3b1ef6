// Set-up helpers of the tests that make PKIs and tokens with command-line tools in throw-away
// directories (tests/daemon's harness, tests/hsm's support).
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace hbsd::test {

// Runs `command` with the shell; throws if it does not exit 0.
inline void run(const std::string& command) {
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
}

// `p` quoted for the shell (test paths hold no single quote).
inline std::string quote(const std::filesystem::path& p) {
    return "'" + p.string() + "'";
}

// A new directory in the temp directory, named `prefix` and six random characters (mkdtemp),
// with `perms` (mkdtemp's 0700 unless a test needs other uids to reach inside).
inline std::filesystem::path make_temp_dir(
    const std::string& prefix, std::filesystem::perms perms = std::filesystem::perms::owner_all) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    if (perms != std::filesystem::perms::owner_all) std::filesystem::permissions(pattern, perms);
    return pattern;
}

}  // namespace hbsd::test
