#include "tests/support/jdk_verify.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace hbsd::test {

JdkResult jdk_verify(const std::string& xml, int expected) {
    static std::atomic<int> counter{0};
    const auto file =
        std::filesystem::temp_directory_path() /
        ("hbsd-jdk-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".xml");
    {
        std::ofstream out(file, std::ios::binary);
        out << xml;
    }
    const std::string cmd = std::string("'") + HBSD_JAVA + "' -cp '" + HBSD_XADES_CLASSES +
                            "' XadesVerify '" + file.string() + "' " + std::to_string(expected) +
                            " 2>&1";
    JdkResult r;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        std::array<char, 4096> buf{};
        std::size_t n;
        while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
        const int rc = ::pclose(p);
        r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    }
    std::filesystem::remove(file);
    return r;
}

}  // namespace hbsd::test
