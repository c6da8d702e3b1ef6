#include "hsm/keys.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>

#include "hsm/errors.hpp"
#include "hsm/uri.hpp"
#include "protocol/hex.hpp"

namespace hbsd::hsm {

namespace {

std::vector<unsigned char> id_of(const unsigned char* id, size_t len) {
    return id ? std::vector<unsigned char>(id, id + len) : std::vector<unsigned char>{};
}

std::string label_of(const char* label) {
    return label ? label : "";
}

// Algorithm and size of a key, from whichever EVP_PKEY we have for it.
bool describe(EVP_PKEY* pkey, KeyAlgorithm& algorithm, int& bits) {
    if (!pkey) return false;
    switch (EVP_PKEY_get_base_id(pkey)) {
        case EVP_PKEY_RSA:
            algorithm = KeyAlgorithm::rsa;
            break;
        case EVP_PKEY_EC:
            algorithm = KeyAlgorithm::ec;
            break;
        default:
            return false;
    }
    bits = EVP_PKEY_get_bits(pkey);
    return true;
}

[[noreturn]] void throw_enumeration_failure(detail::TokenState& token, const char* what) {
    const auto failure = take_p11_failure();
    if (failure.ckr) {
        if (ckr_means_token_gone(*failure.ckr)) token.gone = true;
        throw ckr_error(*failure.ckr, what, token.uri);
    }
    throw Error::internal(std::string(what) + ": " + failure.detail);
}

PKCS11_TOKEN* token_of(detail::TokenState& token) {
    if (!token.slot || !token.slot->token) {
        token.gone = true;
        throw Error::token_not_present(token.uri);
    }
    return token.slot->token;
}

// CKA_ALWAYS_AUTHENTICATE of the private key with this id and label, read on a session of our
// own (libp11 0.4.12 does not expose it). A key it cannot find or read counts as false; its
// signature then fails in libp11 instead, without a prompt (NoPromptUi).
class AttributeReader {
  public:
    explicit AttributeReader(detail::TokenState& token) : f_(token.module->functions) {
        CK_SESSION_HANDLE handle = 0;
        if (f_->C_OpenSession(token.slot_id, CKF_SERIAL_SESSION, nullptr, nullptr, &handle) ==
            CKR_OK)
            session_ = Pkcs11Session(f_.operator->(), handle);
    }

    bool always_authenticate(std::span<const unsigned char> id, std::string_view label) {
        if (!session_) return false;
        CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE find[] = {
            {CKA_CLASS, &klass, sizeof klass},
            {CKA_ID, const_cast<unsigned char*>(id.data()), id.size()},
            {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
        };
        if (f_->C_FindObjectsInit(session_.get(), find, 3) != CKR_OK) return false;
        CK_OBJECT_HANDLE object = 0;
        CK_ULONG found = 0;
        const CK_RV rv = f_->C_FindObjects(session_.get(), &object, 1, &found);
        f_->C_FindObjectsFinal(session_.get());
        if (rv != CKR_OK || found != 1) return false;
        CK_BBOOL value = CK_FALSE;
        CK_ATTRIBUTE get{CKA_ALWAYS_AUTHENTICATE, &value, sizeof value};
        return f_->C_GetAttributeValue(session_.get(), object, &get, 1) == CKR_OK &&
               value == CK_TRUE;
    }

  private:
    const ModuleFunctions& f_;
    Pkcs11Session session_;
};

}  // namespace

void load_private_keys(detail::TokenState& token) {
    PKCS11_TOKEN* p11_token = token_of(token);
    PKCS11_KEY* keys = nullptr;
    unsigned count = 0;
    clear_p11_failures();
    if (PKCS11_enumerate_keys(p11_token, &keys, &count) != 0)
        throw_enumeration_failure(token, "PKCS11_enumerate_keys");
    std::vector<detail::PrivateKey> found;
    AttributeReader attributes(token);
    for (unsigned i = 0; i < count; ++i) {
        detail::PrivateKey key;
        key.id = id_of(keys[i].id, keys[i].id_len);
        key.label = label_of(keys[i].label);
        key.uri = format_key_uri(token.info, key.id, key.label);
        clear_p11_failures();
        key.key.reset(PKCS11_get_private_key(&keys[i]));
        if (!describe(key.key.get(), key.algorithm, key.bits)) {
            // A key type libp11 cannot sign with (e.g. EdDSA in 0.4.12) is not offered.
            clear_p11_failures();
            continue;
        }
        key.always_authenticate = attributes.always_authenticate(key.id, key.label);
        found.push_back(std::move(key));
    }
    token.private_keys = std::move(found);
    token.private_keys_loaded = true;
    token.key_infos.clear();  // answers built on the previous enumeration
}

std::vector<CertificateObject> load_certificates(detail::TokenState& token) {
    PKCS11_TOKEN* p11_token = token_of(token);
    PKCS11_CERT* certs = nullptr;
    unsigned count = 0;
    clear_p11_failures();
    if (PKCS11_enumerate_certs(p11_token, &certs, &count) != 0)
        throw_enumeration_failure(token, "PKCS11_enumerate_certs");
    std::vector<CertificateObject> out;
    for (unsigned i = 0; i < count; ++i) {
        if (!certs[i].x509) continue;
        unsigned char* der = nullptr;
        const int len = i2d_X509(certs[i].x509, &der);
        if (len <= 0) continue;
        CertificateObject c;
        c.id = id_of(certs[i].id, certs[i].id_len);
        c.label = label_of(certs[i].label);
        c.der.assign(der, der + len);
        OPENSSL_free(der);
        out.push_back(std::move(c));
    }
    return out;
}

void attach_certificate(KeyInfo& key, std::span<const unsigned char> id,
                        const std::vector<CertificateObject>& certificates) {
    const CertificateObject* match = nullptr;
    for (const auto& c : certificates) {
        const bool same_id = !id.empty() && std::ranges::equal(c.id, id);
        // Without a CKA_ID, the label is all that ties a certificate to its key.
        const bool same_label = id.empty() && c.id.empty() && c.label == key.label;
        if (same_id || same_label) {
            match = &c;
            break;
        }
    }
    if (!match) return;
    key.certificate_der = match->der;
    key.fingerprint = sha256_hex(match->der);
    const unsigned char* p = match->der.data();
    X509Ptr x509(d2i_X509(nullptr, &p, static_cast<long>(match->der.size())));
    if (!x509) return;
    switch (EVP_PKEY_get_base_id(X509_get0_pubkey(x509.get()))) {
        case EVP_PKEY_RSA:
            key.certificate_algorithm = KeyAlgorithm::rsa;
            break;
        case EVP_PKEY_EC:
            key.certificate_algorithm = KeyAlgorithm::ec;
            break;
        default:
            break;
    }
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio) return;
    if (PEM_write_bio_X509(bio, x509.get()) == 1) {
        char* data = nullptr;
        const long len = BIO_get_mem_data(bio, &data);
        if (len > 0) key.certificate_pem = std::string(data, static_cast<size_t>(len));
    }
    BIO_free(bio);
}

std::vector<KeyInfo> load_key_list(detail::TokenState& token, bool logged_in) {
    const auto certificates = load_certificates(token);

    struct Entry {
        std::vector<unsigned char> id;
        std::string label;
        KeyAlgorithm algorithm = KeyAlgorithm::rsa;
        int bits = 0;
        bool described = false;
        PKCS11_KEY* public_key = nullptr;
    };
    std::vector<Entry> entries;
    auto add = [&entries](std::vector<unsigned char> id, std::string label, EVP_PKEY* pkey) {
        auto it = std::ranges::find_if(entries, [&](const Entry& e) {
            return id.empty() ? (e.id.empty() && e.label == label) : e.id == id;
        });
        if (it == entries.end()) {
            entries.push_back(Entry{std::move(id), std::move(label)});
            it = entries.end() - 1;
        }
        if (!it->described) it->described = describe(pkey, it->algorithm, it->bits);
    };

    // Private keys are visible only while logged in; public keys and certificates name the
    // same key pairs without a login on tokens that store them.
    if (logged_in) {
        if (!token.private_keys_loaded) load_private_keys(token);
        for (const auto& k : token.private_keys) add(k.id, k.label, k.key.get());
    }
    PKCS11_KEY* pubs = nullptr;
    unsigned count = 0;
    clear_p11_failures();
    if (PKCS11_enumerate_public_keys(token_of(token), &pubs, &count) != 0)
        throw_enumeration_failure(token, "PKCS11_enumerate_public_keys");
    // Only named here; described from the certificate below where there is one, because
    // libp11 0.4.12 leaks about 330 bytes for every EVP_PKEY that PKCS11_get_public_key makes.
    for (unsigned i = 0; i < count; ++i) {
        add(id_of(pubs[i].id, pubs[i].id_len), label_of(pubs[i].label), nullptr);
        auto same = [&](const Entry& e) {
            return pubs[i].id_len ? e.id == id_of(pubs[i].id, pubs[i].id_len)
                                  : (e.id.empty() && e.label == label_of(pubs[i].label));
        };
        if (auto it = std::ranges::find_if(entries, same); it != entries.end())
            it->public_key = &pubs[i];
    }
    // A certificate with no key object beside it names a key only on tokens that show no
    // key objects before login (many smart cards); elsewhere it is a CA or peer certificate.
    const bool certificates_name_keys = entries.empty();
    for (const auto& c : certificates) {
        const bool has_key = std::ranges::any_of(entries, [&](const Entry& e) {
            return c.id.empty() ? (e.id.empty() && e.label == c.label) : e.id == c.id;
        });
        if (!has_key && !certificates_name_keys) continue;
        const unsigned char* p = c.der.data();
        X509Ptr x509(d2i_X509(nullptr, &p, static_cast<long>(c.der.size())));
        add(c.id, c.label, x509 ? X509_get0_pubkey(x509.get()) : nullptr);
    }
    for (auto& e : entries) {
        if (e.described || !e.public_key) continue;
        clear_p11_failures();
        EvpPkey pkey(PKCS11_get_public_key(e.public_key));
        e.described = describe(pkey.get(), e.algorithm, e.bits);
    }
    clear_p11_failures();

    std::vector<KeyInfo> keys;
    for (auto& e : entries) {
        if (!e.described) continue;
        KeyInfo info;
        info.uri = format_key_uri(token.info, e.id, e.label);
        info.label = e.label;
        info.algorithm = e.algorithm;
        info.bits = e.bits;
        attach_certificate(info, e.id, certificates);
        keys.push_back(std::move(info));
    }
    return keys;
}

}  // namespace hbsd::hsm
