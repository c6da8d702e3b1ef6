// Does a signer's certificate chain to a configured trust anchor?
//
// One small module on purpose: the daemon asks one question (trusted at time T, or why not), so
// that the policy side can later move it into policies/ without the handlers noticing.
// Anchors: every *.pem / *.crt file of one directory (each may hold several certificates);
// CRLs: PEM or DER files, checked for the leaf when any are configured.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hbsd::daemon {

class TrustStore {
  public:
    // No anchors: every question is answered "no trust anchors configured".
    TrustStore() = default;
    // Throws std::runtime_error naming the file that cannot be read.
    TrustStore(const std::optional<std::string>& anchors_dir,
               const std::vector<std::string>& crl_files);
    TrustStore(TrustStore&&) noexcept;
    TrustStore& operator=(TrustStore&&) noexcept;
    ~TrustStore();

    // nullopt when the DER certificate chains to an anchor (strict X.509 checks, validity at
    // `at`, CRLs if configured); else the reason in words.
    std::optional<std::string> check(std::span<const unsigned char> certificate_der,
                                     std::time_t at) const;
    std::size_t anchors() const noexcept { return anchor_count_; }

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::size_t anchor_count_ = 0;
};

}  // namespace hbsd::daemon
