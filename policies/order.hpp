// The signing-order policy (DESIGN.md, "Policies"): a stage of a year may be signed only when
// every earlier stage of that year is present and valid, and never twice.
#pragma once

#include <optional>
#include <string_view>

#include "dsig/document.hpp"

namespace hbsd::policies {

// Throws, changing nothing:
// - Error::invalid_document for an unknown year or an unknown subject (not a MonHoc of that
//   year's KetQua): the document does not hold what the request names;
// - Error::invalid_parameter("subject") when a subject is missing for subject_teacher or
//   given for another stage;
// - Error::policy("already_signed", ...) when that place already holds a signature;
// - Error::policy("order", ...) when an earlier stage is incomplete (missing signatures) or a
//   later stage is already present (a teacher signing after the homeroom would break it);
// - Error::policy("earlier_invalid", ...) when any earlier signature of the year fails
//   (profile or crypto), or is itself not in order.
//
// This overload verifies only the signatures the decision needs (those of the earlier stages
// of `year`, each at most once): the fast path for Sign.
void check_order(const dsig::Document& document, dsig::Stage stage, std::string_view year,
                 std::optional<std::string_view> subject);

// The same decision from a full report (for callers that already have one, e.g. Verify).
void check_order(const dsig::Report& report, dsig::Stage stage, std::string_view year,
                 std::optional<std::string_view> subject);

}  // namespace hbsd::policies
