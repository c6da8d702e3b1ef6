// Reading a token's objects through libp11: private keys (after login), public keys and the
// certificates stored beside them (same CKA_ID).
#pragma once

#include <libp11.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hsm/token_state.hpp"

namespace hbsd::hsm {

struct CertificateObject {
    std::vector<unsigned char> id;
    std::string label;
    std::vector<unsigned char> der;
};

// Caller holds module->lock (shared) and token.objects (exclusive), has checked that the
// token is present, and must not take token.login meanwhile (lock order, token_state.hpp).
// A failure that means the token is gone sets token.gone and throws TokenNotPresent.
void load_private_keys(detail::TokenState& token);
std::vector<CertificateObject> load_certificates(detail::TokenState& token);
std::vector<KeyInfo> load_key_list(detail::TokenState& token, bool logged_in);

// Fills certificate_der/pem/fingerprint from the certificate with the same id, if any.
void attach_certificate(KeyInfo& key, std::span<const unsigned char> id,
                        const std::vector<CertificateObject>& certificates);

}  // namespace hbsd::hsm
