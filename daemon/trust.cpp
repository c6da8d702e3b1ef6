#include "daemon/trust.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

namespace hbsd::daemon {
namespace {

// One owner per OpenSSL handle.
struct X509Free {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
struct X509StoreFree {
    void operator()(X509_STORE* p) const noexcept { X509_STORE_free(p); }
};
struct X509StoreCtxFree {
    void operator()(X509_STORE_CTX* p) const noexcept { X509_STORE_CTX_free(p); }
};
struct X509CrlFree {
    void operator()(X509_CRL* p) const noexcept { X509_CRL_free(p); }
};
struct BioFree {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using UniqueX509 = std::unique_ptr<X509, X509Free>;
using UniqueX509Store = std::unique_ptr<X509_STORE, X509StoreFree>;
using UniqueX509StoreCtx = std::unique_ptr<X509_STORE_CTX, X509StoreCtxFree>;
using UniqueX509Crl = std::unique_ptr<X509_CRL, X509CrlFree>;
using UniqueBio = std::unique_ptr<BIO, BioFree>;

}  // namespace

struct TrustStore::Impl {
    UniqueX509Store store{X509_STORE_new()};
    bool crls = false;
};

TrustStore::TrustStore(const std::optional<std::string>& anchors_dir,
                       const std::vector<std::string>& crl_files)
    : impl_(std::make_unique<Impl>()) {
    if (!impl_->store) throw std::runtime_error("X509_STORE_new failed");
    if (anchors_dir) {
        std::vector<std::filesystem::path> files;
        for (const auto& e : std::filesystem::directory_iterator(*anchors_dir)) {
            const auto ext = e.path().extension();
            if (e.is_regular_file() && (ext == ".pem" || ext == ".crt")) files.push_back(e.path());
        }
        std::sort(files.begin(), files.end());
        for (const auto& f : files) {
            UniqueBio bio(BIO_new_file(f.c_str(), "r"));
            if (!bio) throw std::runtime_error(f.string() + ": cannot read");
            std::size_t here = 0;
            while (UniqueX509 cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
                X509_STORE_add_cert(impl_->store.get(), cert.get());
                ++here;
            }
            ERR_clear_error();  // the read that ended the loop
            if (here == 0) throw std::runtime_error(f.string() + ": no PEM certificate");
            anchor_count_ += here;
        }
    }
    for (const auto& f : crl_files) {
        UniqueBio bio(BIO_new_file(f.c_str(), "r"));
        if (!bio) throw std::runtime_error(f + ": cannot read");
        UniqueX509Crl crl{PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)};
        if (!crl) {
            BIO_reset(bio.get());
            crl.reset(d2i_X509_CRL_bio(bio.get(), nullptr));
        }
        ERR_clear_error();
        if (!crl) throw std::runtime_error(f + ": not a CRL (PEM or DER)");
        X509_STORE_add_crl(impl_->store.get(), crl.get());
        impl_->crls = true;
    }
}

TrustStore::TrustStore(TrustStore&&) noexcept = default;
TrustStore& TrustStore::operator=(TrustStore&&) noexcept = default;
TrustStore::~TrustStore() = default;

std::optional<std::string> TrustStore::check(std::span<const unsigned char> der,
                                             std::time_t at) const {
    if (!impl_ || anchor_count_ == 0) return "no trust anchors configured";
    const unsigned char* p = der.data();
    UniqueX509 cert{d2i_X509(nullptr, &p, static_cast<long>(der.size()))};
    if (!cert || p != der.data() + der.size()) {
        ERR_clear_error();
        return "certificate is not valid DER";
    }
    UniqueX509StoreCtx ctx{X509_STORE_CTX_new()};
    if (!ctx || X509_STORE_CTX_init(ctx.get(), impl_->store.get(), cert.get(), nullptr) != 1)
        throw std::runtime_error("X509_STORE_CTX_init failed");
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    unsigned long flags = X509_V_FLAG_X509_STRICT;
    if (impl_->crls) flags |= X509_V_FLAG_CRL_CHECK;
    X509_VERIFY_PARAM_set_flags(param, flags);
    X509_VERIFY_PARAM_set_time(param, at);
    const int ok = X509_verify_cert(ctx.get());
    ERR_clear_error();
    if (ok == 1) return std::nullopt;
    return std::string("certificate does not chain to a trust anchor: ") +
           X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

}  // namespace hbsd::daemon
