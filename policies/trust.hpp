// Trust anchors and certificate chain validation (DESIGN.md, "Policies": the certificate
// "chains to a configured trust anchor", judged at a given time).
//
// A TrustStore is loaded once and immutable; reloading (SIGHUP) builds a new one and swaps
// the shared_ptr, so checks in flight keep the old one. check() may run on many threads at
// once. Loading failures are hbsd::Error::internal (a half-read trust configuration must not
// start the daemon); check() never throws for a bad certificate, it reports why.
#pragma once

#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct x509_store_ctx_st;  // OpenSSL's X509_STORE_CTX

namespace hbsd::policies {

enum class TrustProblem {
    none,
    unparseable,      // not a DER X.509 certificate
    expired,          // the certificate (or a CA of its chain) had expired at that time
    not_yet_valid,    // ... or was not yet valid
    revoked,          // listed on a configured CRL
    untrusted,        // no chain to a configured root, or a broken signature in the chain
    crl_unavailable,  // CRLs are configured but none valid for an issuer at that time
    bad_key_usage,    // keyUsage lacks digitalSignature and nonRepudiation, or is absent
    weak_key,         // RSA < 2048 bits, or not RSA / EC P-256 / EC P-384
};

// "expired", "not_yet_valid", ...: stable words for logs and Verify's problems text.
std::string_view to_string(TrustProblem problem) noexcept;

struct TrustResult {
    TrustProblem problem = TrustProblem::none;
    std::string detail;  // human-readable, e.g. "certificate has expired (depth 0)"

    bool ok() const noexcept { return problem == TrustProblem::none; }
    explicit operator bool() const noexcept { return ok(); }
};

struct TrustConfig {
    // Files or directories (not recursive). Every certificate found is a root when
    // self-signed, else an intermediate that may complete a chain but is not trusted alone.
    // CRLs found here count too.
    std::vector<std::filesystem::path> anchors;
    // Files or directories of CRLs. When any CRL is configured, every leaf's issuer must have
    // a valid one at the time checked (X509_V_FLAG_CRL_CHECK), else crl_unavailable.
    std::vector<std::filesystem::path> crls;
};

class TrustStore {
  public:
    // Reads files named *.pem, *.crt, *.cer, *.der, *.crl: PEM (CERTIFICATE and X509 CRL
    // blocks, any number per file) or a single DER certificate or CRL. Other names are
    // skipped; a named file that does not parse is an error. No root at all is an error.
    static std::shared_ptr<const TrustStore> load(const TrustConfig& config);
    static std::shared_ptr<const TrustStore> load(const std::filesystem::path& directory);
    // For tests and embedding: concatenated PEM text.
    static std::shared_ptr<const TrustStore> from_pem(std::string_view certificates_pem,
                                                      std::string_view crls_pem = {});

    ~TrustStore();
    TrustStore(const TrustStore&) = delete;
    TrustStore& operator=(const TrustStore&) = delete;

    // Chain, revocation and validity at `at`, then key usage and key strength of the leaf.
    // When several things are wrong the most telling one is reported, in this order:
    // revoked, untrusted, expired, not_yet_valid, crl_unavailable, bad_key_usage, weak_key.
    TrustResult check(std::span<const unsigned char> der,
                      std::chrono::system_clock::time_point at) const;

    // For RegisterCertificate: the same check, as Error::certificate_invalid(reason) with the
    // problem's word (expired, revoked, untrusted, ...) when it fails.
    void require(std::span<const unsigned char> der,
                 std::chrono::system_clock::time_point at) const;

    std::size_t root_count() const noexcept;
    std::size_t intermediate_count() const noexcept;
    std::size_t crl_count() const noexcept;

    struct Impl;

  private:
    explicit TrustStore(std::unique_ptr<Impl> impl);
    // Caches a passed check with the span of time in which it cannot change.
    void remember(std::string der, x509_store_ctx_st* verified, std::time_t when) const;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hbsd::policies
