// hbsctl's exit codes: what happened, for scripts. Documented in `hbsctl --help`.
#pragma once

#include "protocol/error.hpp"

namespace hbsd::hbsctl {

enum Exit : int {
    ok = 0,
    internal = 1,    // the daemon's Internal error, a malformed reply, anything unexpected
    usage = 2,       // bad command line, or the daemon refused the call's parameters
    connection = 3,  // cannot connect, or the connection broke
    permission = 4,  // PermissionDenied
    policy = 5,      // PolicyViolation
    invalid_document =
        6,               // InvalidDocument, DocumentTooLarge, or an input file that cannot be read
    token = 7,           // TokenNotFound/NotPresent, KeyNotFound, PinIncorrect/Locked, Session*
    verify_invalid = 8,  // verify: verdict invalid
    verify_incomplete = 9,  // verify: verdict incomplete
    busy = 10,              // Busy: try again later
    not_found = 11,         // CertificateNotFound, CertificateInvalid, RecordNotFound
    batch_partial = 12,     // sign-batch: some items failed (each is reported)
};

constexpr int exit_code_for(Errc e) noexcept {
    switch (e) {
        case Errc::PermissionDenied:
            return permission;
        case Errc::PolicyViolation:
            return policy;
        case Errc::InvalidDocument:
        case Errc::DocumentTooLarge:
            return invalid_document;
        case Errc::TokenNotFound:
        case Errc::TokenNotPresent:
        case Errc::KeyNotFound:
        case Errc::PinIncorrect:
        case Errc::PinLocked:
        case Errc::SessionNotFound:
        case Errc::SessionExpired:
            return token;
        case Errc::CertificateNotFound:
        case Errc::CertificateInvalid:
        case Errc::RecordNotFound:
            return not_found;
        case Errc::Busy:
            return busy;
        case Errc::MethodNotFound:
        case Errc::InvalidParameter:
        case Errc::InterfaceNotFound:
        case Errc::ExpectedMore:
            return usage;
        case Errc::Internal:
            return internal;
    }
    return internal;
}

inline constexpr const char* kExitCodeHelp =
    "Exit codes: 0 ok; 1 internal error; 2 usage or invalid parameter; 3 connection failure;\n"
    "4 permission denied; 5 policy violation; 6 invalid document; 7 token, key, PIN or session\n"
    "problem; 8 verify: invalid; 9 verify: incomplete; 10 busy (retry); 11 certificate or\n"
    "record not found; 12 sign-batch: some items failed.";

}  // namespace hbsd::hbsctl
