// Verification of one signature against the profile and cryptographically.
#pragma once

#include "dsig/document.hpp"
#include "dsig/profile.hpp"

namespace hbsd::dsig::detail {

// Profile first (place, Id, exact SignedInfo, References and transforms, KeyInfo certificate,
// XAdES), then, only if that holds, xmlSecDSigCtxVerify with a key made from the KeyInfo
// certificate's public key (no chain building: trust is the caller's judgement). in_order is
// left false: it depends on the other signatures (Document computes it).
SignatureReport check_signature(const Record& rec, const Slot& slot);

}  // namespace hbsd::dsig::detail
