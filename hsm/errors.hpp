// How PKCS#11 failures become hbsd::Error.
//
// libp11 0.4.12 reports a failed PKCS#11 call through OpenSSL's (thread-local) error queue:
// ERR_GET_LIB(e) == ERR_get_CKR_code() (a library number libp11 allocates at run time) and
// ERR_GET_REASON(e) is the CKR_* value itself (e.g. 0xa0 CKR_PIN_INCORRECT). Its own
// non-PKCS#11 failures use a second library (P11_R_* reasons in p11_err.h). Calls that hsm/
// makes directly through the module's function list return the CK_RV as usual.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocol/error.hpp"

namespace hbsd::hsm {

using ck_rv = unsigned long;

struct P11Failure {
    std::optional<ck_rv> ckr;  // the first CKR code libp11 queued, if any
    bool ui_failed = false;    // libp11 wanted a PIN from its UI (context-specific login)
    std::string detail;        // every queued entry, for logs
};

// Empties the calling thread's OpenSSL error queue.
P11Failure take_p11_failure();
void clear_p11_failures() noexcept;

// "CKR_PIN_INCORRECT", or "CKR_0x..." for a code without a name here.
std::string ckr_name(ck_rv rv);

// The token (or its device, or every session on it) is gone: TokenNotPresent.
bool ckr_means_token_gone(ck_rv rv) noexcept;

// The protocol error for a failed operation (not login: see login_error) on a token/key.
// `what` names the operation for the log detail.
Error ckr_error(ck_rv rv, std::string_view what, std::string_view token_uri,
                std::string_view key_uri = {});

// The protocol error for a failed C_Login. `flags` are the token flags read again after the
// failure (nullopt when they could not be read).
Error login_error(ck_rv rv, std::optional<unsigned long> flags, std::string_view token_uri);

}  // namespace hbsd::hsm
