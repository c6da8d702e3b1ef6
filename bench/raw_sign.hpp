// The yardstick for every benchmark: C_Sign called directly through the module's function list,
// with nothing of hbsd in between, on the same token and key the hbsd figures use.
#pragma once

#include <string>

namespace hbsd::bench {

struct RawSignResult {
    double per_second = 0;  // signatures per wall-clock second, all threads together
    // Signatures per second of the signing threads' own CPU time (per thread, averaged): the
    // figure to compare on a loaded machine, where wall-clock rates mostly measure the load.
    double per_cpu_second = 0;
    long signatures = 0;
};

// CPU time consumed so far by the calling thread, in seconds.
double thread_cpu_seconds() noexcept;

enum class RawKind { rsa_pkcs1_sha256, ecdsa };

// Signs a SHA-256 digest (as DigestInfo for RSA, bare for ECDSA) with the private key labelled
// `label` on the first token labelled `token_label`, from `threads` threads, each with its own
// session, for `seconds`. Throws std::runtime_error on any PKCS#11 failure.
RawSignResult raw_sign(const std::string& module_path, const std::string& token_label,
                       const std::string& pin, const std::string& label, RawKind kind, int threads,
                       double seconds);

}  // namespace hbsd::bench
