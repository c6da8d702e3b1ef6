#include "bench/support.hpp"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "bench/raw_sign.hpp"

namespace hbsd::bench {

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void run(const std::string& command) {
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
}

Rate rate(double seconds, const std::function<void()>& f) {
    using clock = std::chrono::steady_clock;
    f();
    long n = 0;
    const double cpu_start = thread_cpu_seconds();
    const auto start = clock::now();
    const auto until = start + std::chrono::duration<double>(seconds);
    while (clock::now() < until) {
        f();
        ++n;
    }
    return {n / std::chrono::duration<double>(clock::now() - start).count(),
            n / (thread_cpu_seconds() - cpu_start)};
}

}  // namespace hbsd::bench
