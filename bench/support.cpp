#include "bench/support.hpp"

#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "bench/raw_sign.hpp"

namespace hbsd::bench {

std::filesystem::path make_test_token(const std::string& prefix) {
    const std::filesystem::path dir = test::make_temp_dir(prefix + "-");
    run("'" HBSD_TEST_SUPPORT_DIR "/make-test-pki' '" + (dir / "pki").string() + "' >/dev/null");
    run("'" HBSD_TEST_SUPPORT_DIR "/make-softhsm-token' '" + (dir / "hsm").string() + "' '" +
        (dir / "pki").string() + "' " + kToken + " " + kPin);
    ::setenv("SOFTHSM2_CONF", (dir / "hsm" / "softhsm2.conf").c_str(), 1);
    return dir;
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
