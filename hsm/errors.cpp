#include "hsm/errors.hpp"

#include <libp11.h>
#include <openssl/err.h>
#include <p11-kit/pkcs11.h>

#include <cstdio>

namespace hbsd::hsm {

namespace {

struct Named {
    ck_rv value;
    const char* name;
};

#define HSM_CKR(name) \
    Named {           \
        name, #name   \
    }
constexpr Named ckr_names[] = {
    HSM_CKR(CKR_OK),
    HSM_CKR(CKR_HOST_MEMORY),
    HSM_CKR(CKR_SLOT_ID_INVALID),
    HSM_CKR(CKR_GENERAL_ERROR),
    HSM_CKR(CKR_FUNCTION_FAILED),
    HSM_CKR(CKR_ARGUMENTS_BAD),
    HSM_CKR(CKR_ATTRIBUTE_TYPE_INVALID),
    HSM_CKR(CKR_DATA_INVALID),
    HSM_CKR(CKR_DATA_LEN_RANGE),
    HSM_CKR(CKR_DEVICE_ERROR),
    HSM_CKR(CKR_DEVICE_MEMORY),
    HSM_CKR(CKR_DEVICE_REMOVED),
    HSM_CKR(CKR_FUNCTION_CANCELED),
    HSM_CKR(CKR_FUNCTION_NOT_SUPPORTED),
    HSM_CKR(CKR_KEY_HANDLE_INVALID),
    HSM_CKR(CKR_KEY_TYPE_INCONSISTENT),
    HSM_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED),
    HSM_CKR(CKR_MECHANISM_INVALID),
    HSM_CKR(CKR_MECHANISM_PARAM_INVALID),
    HSM_CKR(CKR_OBJECT_HANDLE_INVALID),
    HSM_CKR(CKR_OPERATION_ACTIVE),
    HSM_CKR(CKR_OPERATION_NOT_INITIALIZED),
    HSM_CKR(CKR_PIN_INCORRECT),
    HSM_CKR(CKR_PIN_INVALID),
    HSM_CKR(CKR_PIN_LEN_RANGE),
    HSM_CKR(CKR_PIN_EXPIRED),
    HSM_CKR(CKR_PIN_LOCKED),
    HSM_CKR(CKR_SESSION_CLOSED),
    HSM_CKR(CKR_SESSION_COUNT),
    HSM_CKR(CKR_SESSION_HANDLE_INVALID),
    HSM_CKR(CKR_TOKEN_NOT_PRESENT),
    HSM_CKR(CKR_TOKEN_NOT_RECOGNIZED),
    HSM_CKR(CKR_USER_ALREADY_LOGGED_IN),
    HSM_CKR(CKR_USER_NOT_LOGGED_IN),
    HSM_CKR(CKR_USER_PIN_NOT_INITIALIZED),
    HSM_CKR(CKR_USER_TYPE_INVALID),
    HSM_CKR(CKR_BUFFER_TOO_SMALL),
    HSM_CKR(CKR_CRYPTOKI_NOT_INITIALIZED),
    HSM_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED),
};
#undef HSM_CKR

}  // namespace

std::string ckr_name(ck_rv rv) {
    for (const auto& n : ckr_names)
        if (n.value == rv) return n.name;
    char buf[32];
    std::snprintf(buf, sizeof buf, "CKR_0x%lx", rv);
    return buf;
}

void clear_p11_failures() noexcept {
    ERR_clear_error();
}

P11Failure take_p11_failure() {
    P11Failure f;
    const int ckr_lib = ERR_get_CKR_code();
    const char* file = nullptr;
    int line = 0;
    while (unsigned long e = ERR_get_error_all(&file, &line, nullptr, nullptr, nullptr)) {
        // libp11 0.4.12 files its UI failure under the CKR library, as reason P11_R_UI_FAILED
        // (0x407), which is no CKR value.
        if (ERR_GET_REASON(e) == P11_R_UI_FAILED)
            f.ui_failed = true;
        else if (!f.ckr && ERR_GET_LIB(e) == ckr_lib)
            f.ckr = ERR_GET_REASON(e);
        char text[256];
        ERR_error_string_n(e, text, sizeof text);
        if (!f.detail.empty()) f.detail += "; ";
        f.detail += text;
    }
    return f;
}

bool ckr_means_token_gone(ck_rv rv) noexcept {
    switch (rv) {
        case CKR_TOKEN_NOT_PRESENT:
        case CKR_TOKEN_NOT_RECOGNIZED:
        case CKR_DEVICE_REMOVED:
        case CKR_SLOT_ID_INVALID:
        // Every session of a token dies with it; a session handle that stopped being valid
        // under us means the token was removed (or reset) since the session was opened.
        case CKR_SESSION_HANDLE_INVALID:
        case CKR_SESSION_CLOSED:
        // The module was finalised or restarted under us: every session died with it.
        case CKR_CRYPTOKI_NOT_INITIALIZED:
            return true;
        default:
            return false;
    }
}

Error ckr_error(ck_rv rv, std::string_view what, std::string_view token_uri,
                std::string_view key_uri) {
    if (ckr_means_token_gone(rv)) return Error::token_not_present(token_uri);
    switch (rv) {
        case CKR_KEY_HANDLE_INVALID:
        case CKR_OBJECT_HANDLE_INVALID:
            if (!key_uri.empty()) return Error::key_not_found(key_uri);
            break;
        case CKR_PIN_LOCKED:
            return Error::pin_locked();
        case CKR_SESSION_COUNT:
        case CKR_OPERATION_ACTIVE:
            // Too many sessions or a busy token: worth retrying shortly.
            return Error::busy(200);
        default:
            break;
    }
    return Error::internal(std::string(what) + ": " + ckr_name(rv));
}

Error login_error(ck_rv rv, std::optional<unsigned long> flags, std::string_view token_uri) {
    const bool locked = flags && (*flags & CKF_USER_PIN_LOCKED);
    switch (rv) {
        case CKR_PIN_INCORRECT:
        case CKR_PIN_INVALID:
        case CKR_PIN_LEN_RANGE: {
            if (locked) return Error::pin_locked();
            // Tokens state the exact count only as "final try"; "count low" has no number.
            std::optional<long> retries;
            if (flags && (*flags & CKF_USER_PIN_FINAL_TRY)) retries = 1;
            return Error::pin_incorrect(retries);
        }
        case CKR_PIN_LOCKED:
        // An expired PIN must be changed by an administrator before the token signs again;
        // to the person at the keyboard that is a locked PIN.
        case CKR_PIN_EXPIRED:
            return Error::pin_locked();
        default:
            if (locked) return Error::pin_locked();
            return ckr_error(rv, "C_Login", token_uri);
    }
}

}  // namespace hbsd::hsm
