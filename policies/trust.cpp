#include "policies/trust.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <climits>
#include <ctime>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "protocol/error.hpp"

namespace hbsd::policies {
namespace {

struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
struct CrlFree {
    void operator()(X509_CRL* c) const noexcept { X509_CRL_free(c); }
};
struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct CtxFree {
    void operator()(X509_STORE_CTX* c) const noexcept { X509_STORE_CTX_free(c); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using CrlPtr = std::unique_ptr<X509_CRL, CrlFree>;

struct Loaded {
    std::vector<X509Ptr> certificates;
    std::vector<CrlPtr> crls;
};

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error::internal("trust: cannot read " + path.string());
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// PEM: every CERTIFICATE and X509 CRL block; other block types (keys!) are refused so that a
// misplaced private key is noticed rather than silently sitting in the trust directory.
void parse_pem(std::string_view text, const std::string& origin, Loaded& out) {
    if (text.size() > INT_MAX) throw Error::internal("trust: " + origin + " too large");
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    if (!bio) throw Error::internal("openssl: BIO_new_mem_buf");
    std::size_t blocks = 0;
    for (;;) {
        char* name = nullptr;
        char* header = nullptr;
        unsigned char* data = nullptr;
        long len = 0;
        if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) break;
        const std::string type = name;
        const unsigned char* p = data;
        std::string error;
        if (type == "CERTIFICATE") {
            if (X509Ptr x(d2i_X509(nullptr, &p, len)); x)
                out.certificates.push_back(std::move(x));
            else
                error = "unparseable certificate";
        } else if (type == "X509 CRL") {
            if (CrlPtr c(d2i_X509_CRL(nullptr, &p, len)); c)
                out.crls.push_back(std::move(c));
            else
                error = "unparseable CRL";
        } else {
            error = "unexpected PEM block " + type;
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (!error.empty()) throw Error::internal("trust: " + origin + ": " + error);
        ++blocks;
    }
    // The loop ends on PEM_R_NO_START_LINE; leave no stale error for the next OpenSSL caller.
    ERR_clear_error();
    if (blocks == 0) throw Error::internal("trust: " + origin + ": no PEM certificate or CRL");
}

void parse_any(std::string_view text, const std::string& origin, Loaded& out) {
    if (text.find("-----BEGIN ") != std::string_view::npos) return parse_pem(text, origin, out);
    const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
    const long len = static_cast<long>(text.size());
    const unsigned char* p = begin;
    if (X509Ptr x(d2i_X509(nullptr, &p, len)); x && p == begin + len) {
        out.certificates.push_back(std::move(x));
        return;
    }
    p = begin;
    if (CrlPtr c(d2i_X509_CRL(nullptr, &p, len)); c && p == begin + len) {
        out.crls.push_back(std::move(c));
        return;
    }
    throw Error::internal("trust: " + origin + ": neither PEM nor a DER certificate or CRL");
}

bool wanted(const std::filesystem::path& p) {
    static constexpr std::array kExt{".pem", ".crt", ".cer", ".der", ".crl"};
    const auto ext = p.extension().string();
    return std::find(kExt.begin(), kExt.end(), ext) != kExt.end();
}

void load_path(const std::filesystem::path& path, Loaded& out) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        std::vector<std::filesystem::path> files;
        for (const auto& e : std::filesystem::directory_iterator(path, ec))
            if (e.is_regular_file() && wanted(e.path())) files.push_back(e.path());
        if (ec) throw Error::internal("trust: cannot list " + path.string() + ": " + ec.message());
        std::sort(files.begin(), files.end());  // deterministic, for logs
        for (const auto& f : files) parse_any(read_file(f), f.string(), out);
    } else {
        parse_any(read_file(path), path.string(), out);
    }
}

bool self_signed(X509* x) {
    // X509_check_purpose caches the extensions (EXFLAG_SS among them); doing it here, at load
    // time, also means no two threads race to fill that cache during check().
    X509_check_purpose(x, -1, 0);
    return (X509_get_extension_flags(x) & EXFLAG_SS) != 0;
}

// Errors seen during one verification: the callback keeps OpenSSL going so that we can
// report the most telling problem rather than whichever it met first.
struct Seen {
    std::vector<std::pair<int, int>> errors;  // (X509_V_ERR_*, depth)
};

int collect(int ok, X509_STORE_CTX* ctx) {
    if (!ok) {
        auto* seen = static_cast<Seen*>(X509_STORE_CTX_get_app_data(ctx));
        if (seen)
            seen->errors.emplace_back(X509_STORE_CTX_get_error(ctx),
                                      X509_STORE_CTX_get_error_depth(ctx));
    }
    return 1;
}

TrustProblem classify(int err) {
    switch (err) {
        case X509_V_ERR_CERT_REVOKED:
            return TrustProblem::revoked;
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return TrustProblem::expired;
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return TrustProblem::not_yet_valid;
        case X509_V_ERR_UNABLE_TO_GET_CRL:
        case X509_V_ERR_CRL_HAS_EXPIRED:
        case X509_V_ERR_CRL_NOT_YET_VALID:
        case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
        case X509_V_ERR_CRL_SIGNATURE_FAILURE:
        case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
        case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
        case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
        case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
        case X509_V_ERR_DIFFERENT_CRL_SCOPE:
        case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
            return TrustProblem::crl_unavailable;
        default:
            return TrustProblem::untrusted;
    }
}

int rank(TrustProblem p) {
    switch (p) {
        case TrustProblem::revoked:
            return 0;
        case TrustProblem::untrusted:
            return 1;
        case TrustProblem::expired:
            return 2;
        case TrustProblem::not_yet_valid:
            return 3;
        case TrustProblem::crl_unavailable:
            return 4;
        default:
            return 5;
    }
}

TrustResult key_checks(X509* leaf) {
    if (!(X509_get_extension_flags(leaf) & EXFLAG_KUSAGE))
        return {TrustProblem::bad_key_usage, "no keyUsage extension"};
    if (!(X509_get_key_usage(leaf) & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)))
        return {TrustProblem::bad_key_usage,
                "keyUsage has neither digitalSignature nor "
                "nonRepudiation"};
    EVP_PKEY* key = X509_get0_pubkey(leaf);
    if (!key) return {TrustProblem::weak_key, "unreadable public key"};
    if (EVP_PKEY_is_a(key, "RSA")) {
        const int bits = EVP_PKEY_get_bits(key);
        if (bits < 2048)
            return {TrustProblem::weak_key, "RSA key of " + std::to_string(bits) + " bits"};
        return {};
    }
    if (EVP_PKEY_is_a(key, "EC")) {
        char group[64] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1)
            return {TrustProblem::weak_key, "EC key with unknown curve"};
        const std::string_view g(group, len);
        if (g == "prime256v1" || g == "P-256" || g == "secp384r1" || g == "P-384") return {};
        return {TrustProblem::weak_key, "EC curve " + std::string(g) + " not allowed"};
    }
    return {TrustProblem::weak_key,
            std::string("key type ") + EVP_PKEY_get0_type_name(key) + " not allowed"};
}

// Seconds since the epoch of an ASN1_TIME; nullopt if it cannot be read.
std::optional<std::time_t> epoch_of(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
    return timegm(&tm);
}

// The span of time within which a check's outcome cannot change: every certificate of the
// chain inside its validity, every configured CRL current. Everything else a check reads
// (the store, the chain's signatures, the leaf's key and extensions) is fixed for the life of
// a TrustStore.
struct Window {
    std::time_t from = std::numeric_limits<std::time_t>::min();
    std::time_t until = std::numeric_limits<std::time_t>::max();  // exclusive

    void narrow(const ASN1_TIME* not_before, const ASN1_TIME* not_after, bool& ok) {
        const auto b = epoch_of(not_before);
        const auto a = epoch_of(not_after);
        if (!b || !a) {
            ok = false;
            return;
        }
        from = std::max(from, *b);
        until = std::min(until, *a);  // OpenSSL still accepts t == notAfter: we stop 1 s early
    }
    bool contains(std::time_t t) const noexcept { return from <= t && t < until; }
};

}  // namespace

struct TrustStore::Impl {
    X509_STORE* store = nullptr;
    STACK_OF(X509) * intermediates = nullptr;
    std::size_t roots = 0;
    std::size_t crls = 0;
    // Where every configured CRL is current (thisUpdate <= t < nextUpdate); with none, always.
    Window crl_window;
    bool crl_window_ok = true;

    // Chain validation is the costliest part of a registry check (0.12 ms a signature against
    // 0.7 ms for the whole signature, bench_registry) and a pure function of the certificate
    // and the time within a Window, so successes are remembered with their window. A reload
    // builds a new TrustStore, hence a new, empty cache: revocation by a new CRL is never
    // hidden by it. Bounded; failures are not cached (rare, and cheap to redo).
    mutable std::mutex cache_mu;
    mutable std::unordered_map<std::string, Window> passed;  // DER -> where it passes
    static constexpr std::size_t kMaxCached = 4096;

    Impl() : store(X509_STORE_new()), intermediates(sk_X509_new_null()) {
        if (!store || !intermediates) throw Error::internal("openssl: out of memory");
    }
    ~Impl() {
        X509_STORE_free(store);
        sk_X509_pop_free(intermediates, X509_free);
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    void add(Loaded&& loaded) {
        for (auto& x : loaded.certificates) {
            if (self_signed(x.get())) {
                if (X509_STORE_add_cert(store, x.get()) != 1)
                    throw Error::internal("openssl: X509_STORE_add_cert");
                ++roots;
            } else {
                if (sk_X509_push(intermediates, x.get()) <= 0)
                    throw Error::internal("openssl: sk_X509_push");
                x.release();  // owned by the stack now
            }
        }
        for (auto& c : loaded.crls) {
            if (X509_STORE_add_crl(store, c.get()) != 1)
                throw Error::internal("openssl: X509_STORE_add_crl");
            ++crls;
            const ASN1_TIME* next = X509_CRL_get0_nextUpdate(c.get());
            const auto last = epoch_of(X509_CRL_get0_lastUpdate(c.get()));
            if (!last)
                crl_window_ok = false;
            else
                crl_window.from = std::max(crl_window.from, *last);
            if (next != nullptr) {
                const auto n = epoch_of(next);
                if (!n)
                    crl_window_ok = false;
                else
                    crl_window.until = std::min(crl_window.until, *n);
            }
        }
        if (roots == 0) throw Error::internal("trust: no root certificate configured");
    }
};

std::string_view to_string(TrustProblem problem) noexcept {
    switch (problem) {
        case TrustProblem::none:
            return "ok";
        case TrustProblem::unparseable:
            return "unparseable";
        case TrustProblem::expired:
            return "expired";
        case TrustProblem::not_yet_valid:
            return "not_yet_valid";
        case TrustProblem::revoked:
            return "revoked";
        case TrustProblem::untrusted:
            return "untrusted";
        case TrustProblem::crl_unavailable:
            return "crl_unavailable";
        case TrustProblem::bad_key_usage:
            return "bad_key_usage";
        case TrustProblem::weak_key:
            return "weak_key";
    }
    return "untrusted";
}

TrustStore::TrustStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrustStore::~TrustStore() = default;

std::shared_ptr<const TrustStore> TrustStore::load(const TrustConfig& config) {
    Loaded loaded;
    for (const auto& p : config.anchors) load_path(p, loaded);
    for (const auto& p : config.crls) {
        Loaded crls;
        load_path(p, crls);
        if (!crls.certificates.empty())
            throw Error::internal("trust: " + p.string() + ": a certificate among the CRLs");
        for (auto& c : crls.crls) loaded.crls.push_back(std::move(c));
    }
    auto impl = std::make_unique<Impl>();
    impl->add(std::move(loaded));
    return std::shared_ptr<const TrustStore>(new TrustStore(std::move(impl)));
}

std::shared_ptr<const TrustStore> TrustStore::load(const std::filesystem::path& directory) {
    return load(TrustConfig{{directory}, {}});
}

std::shared_ptr<const TrustStore> TrustStore::from_pem(std::string_view certificates_pem,
                                                       std::string_view crls_pem) {
    Loaded loaded;
    parse_pem(certificates_pem, "certificates", loaded);
    if (!crls_pem.empty()) parse_pem(crls_pem, "CRLs", loaded);
    auto impl = std::make_unique<Impl>();
    impl->add(std::move(loaded));
    return std::shared_ptr<const TrustStore>(new TrustStore(std::move(impl)));
}

std::size_t TrustStore::root_count() const noexcept {
    return impl_->roots;
}
std::size_t TrustStore::intermediate_count() const noexcept {
    return static_cast<std::size_t>(sk_X509_num(impl_->intermediates));
}
std::size_t TrustStore::crl_count() const noexcept {
    return impl_->crls;
}

TrustResult TrustStore::check(std::span<const unsigned char> der,
                              std::chrono::system_clock::time_point at) const {
    const std::time_t when = std::chrono::system_clock::to_time_t(at);
    std::string key(reinterpret_cast<const char*>(der.data()), der.size());
    {
        std::lock_guard lock(impl_->cache_mu);
        if (auto it = impl_->passed.find(key);
            it != impl_->passed.end() && it->second.contains(when))
            return {};
    }
    const unsigned char* p = der.data();
    X509Ptr leaf(der.size() <= LONG_MAX ? d2i_X509(nullptr, &p, static_cast<long>(der.size()))
                                        : nullptr);
    if (!leaf || p != der.data() + der.size())
        return {TrustProblem::unparseable, "not a DER X.509 certificate"};

    std::unique_ptr<X509_STORE_CTX, CtxFree> ctx(X509_STORE_CTX_new());
    if (!ctx) throw Error::internal("openssl: X509_STORE_CTX_new");
    if (X509_STORE_CTX_init(ctx.get(), impl_->store, leaf.get(), impl_->intermediates) != 1)
        throw Error::internal("openssl: X509_STORE_CTX_init");
    // Per-context settings only: the shared X509_STORE is never modified after loading.
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_time(param, when);
    if (impl_->crls > 0) X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK);
    Seen seen;
    X509_STORE_CTX_set_app_data(ctx.get(), &seen);
    X509_STORE_CTX_set_verify_cb(ctx.get(), collect);

    const int rc = X509_verify_cert(ctx.get());
    if (rc != 1 && seen.errors.empty())
        seen.errors.emplace_back(X509_STORE_CTX_get_error(ctx.get()),
                                 X509_STORE_CTX_get_error_depth(ctx.get()));
    if (!seen.errors.empty()) {
        auto best = seen.errors.front();
        for (const auto& e : seen.errors)
            if (rank(classify(e.first)) < rank(classify(best.first))) best = e;
        return {classify(best.first), std::string(X509_verify_cert_error_string(best.first)) +
                                          " (depth " + std::to_string(best.second) + ")"};
    }
    TrustResult result = key_checks(leaf.get());
    if (result.ok()) remember(std::move(key), ctx.get(), when);
    return result;
}

void TrustStore::remember(std::string der, X509_STORE_CTX* verified, std::time_t when) const {
    Window w;
    bool ok = impl_->crls == 0 || impl_->crl_window_ok;
    if (impl_->crls > 0) w = impl_->crl_window;
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(verified);
    for (int i = 0; ok && chain != nullptr && i < sk_X509_num(chain); ++i) {
        X509* c = sk_X509_value(chain, i);
        w.narrow(X509_get0_notBefore(c), X509_get0_notAfter(c), ok);
    }
    if (!ok || chain == nullptr || !w.contains(when)) return;
    std::lock_guard lock(impl_->cache_mu);
    if (impl_->passed.size() >= Impl::kMaxCached) impl_->passed.clear();
    impl_->passed.insert_or_assign(std::move(der), w);
}

void TrustStore::require(std::span<const unsigned char> der,
                         std::chrono::system_clock::time_point at) const {
    const auto r = check(der, at);
    if (!r) throw Error::certificate_invalid(to_string(r.problem));
}

}  // namespace hbsd::policies
