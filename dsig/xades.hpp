// XAdES-BES qualifying properties of the profile (ETSI EN 319 132-1, namespace
// http://uri.etsi.org/01903/v1.3.2#): SigningTime, SigningCertificateV2 (SHA-256 CertDigest),
// SignerRoleV2/ClaimedRoles/ClaimedRole naming the stage.
#pragma once

#include <libxml/tree.h>

#include <chrono>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "dsig/document.hpp"
#include "dsig/xmlsec.hpp"

namespace hbsd::dsig::detail {

// xsd:dateTime in UTC, whole seconds: 2025-05-30T08:00:00Z.
std::string format_signing_time(std::chrono::system_clock::time_point t);

// Fills the (empty) ds:Object of a signature template; returns the SignedProperties element,
// whose Id is "<sig_id>-SP".
xmlNodePtr add_qualifying_properties(xmlNodePtr object, const std::string& sig_id, Stage stage,
                                     const CertInfo& cert, const std::string& signing_time);

// Checks the ds:Object against the profile (exact structure, Target, Id, SigningTime format,
// CertDigest of `cert`, ClaimedRole == stage); appends a problem per mismatch and returns
// the SigningTime text when there is one.
std::optional<std::string> check_qualifying_properties(xmlNodePtr object, const std::string& sig_id,
                                                       Stage stage, const CertInfo* cert,
                                                       std::vector<std::string>& problems);

// true if `node` has no attributes other than the given (namespace-less) names.
bool only_attributes(xmlNodePtr node, std::initializer_list<const char*> allowed);

}  // namespace hbsd::dsig::detail
