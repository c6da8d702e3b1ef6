// Throw-away directories of the tests, and the helpers of those that fill them with PKIs and
// tokens made by command-line tools and read what they made (tests/daemon's harness, tests/hsm's
// and tests/dsig's support, bench/support).
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace hbsd::test {

// The whole file, bytes as they are; throws if it cannot be read.
inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Runs `command` with the shell; throws if it does not exit 0.
inline void run(const std::string& command) {
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
}

// `p` quoted for the shell (test paths hold no single quote).
inline std::string quote(const std::filesystem::path& p) {
    return "'" + p.string() + "'";
}

// For a directory other uids must reach inside (a socket that the access tests connect to as
// 65534, a dbus-daemon's): 0755.
inline constexpr auto kReachable =
    std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
    std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
    std::filesystem::perms::others_exec;

// A new directory in the temp directory, named `prefix` and six random characters (mkdtemp),
// with `perms` (mkdtemp's 0700 unless a test needs other uids to reach inside).
inline std::filesystem::path make_temp_dir(
    const std::string& prefix, std::filesystem::perms perms = std::filesystem::perms::owner_all) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    if (perms != std::filesystem::perms::owner_all) std::filesystem::permissions(pattern, perms);
    return pattern;
}

// A make_temp_dir directory, removed with everything inside when this goes out of scope: also
// when a test or its set-up throws half-way, which a bare path would leave behind in /tmp.
class TempDir {
  public:
    explicit TempDir(const std::string& prefix = "hbsd-test-",
                     std::filesystem::perms perms = std::filesystem::perms::owner_all)
        : path_(make_temp_dir(prefix, perms)) {}
    // Runs during stack unwinding too, so it must not throw: a directory it cannot remove is
    // left behind rather than ending the test binary.
    ~TempDir() noexcept {
        if (path_.empty()) return;
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
    // Hands the directory to an owner that removes it itself (a fully constructed
    // test::Daemon); this no longer removes it.
    std::filesystem::path release() noexcept { return std::exchange(path_, {}); }

  private:
    std::filesystem::path path_;
};

}  // namespace hbsd::test
