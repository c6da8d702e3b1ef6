// Making one signature at its place.
#pragma once

#include <chrono>
#include <optional>

#include "dsig/document.hpp"
#include "dsig/profile.hpp"

namespace hbsd::dsig::detail {

// Builds the profile's ds:Signature template for (stage, year, subject), puts it at its place,
// lets xmlsec digest the References, canonicalise SignedInfo and write KeyInfo, with the
// private-key step done by `signer` through our SignatureMethod transform. Inserts the new
// Slot (checked, valid; in_order not yet computed) and returns it. The caller has checked
// that the place is free and next. On any error the tree is as before.
Slot& sign_slot(Record& rec, Stage stage, std::size_t year, std::optional<std::size_t> subject,
                const Signer& signer, std::chrono::system_clock::time_point signing_time);

}  // namespace hbsd::dsig::detail
