// The profile's XML Schema (dsig/hocba.xsd), compiled into the library.
#pragma once

#include <libxml/tree.h>

#include <string_view>

namespace hbsd::dsig {

// The XSD text as built in (generated from dsig/hocba.xsd by CMake).
std::string_view embedded_schema() noexcept;

// Validates `doc` against the schema; throws Error::invalid_document(reason, line) with the
// first violation. The schema is parsed and compiled once per process and shared read-only;
// each thread keeps its own validation context (libxml2's are not thread-safe).
void validate_schema(xmlDocPtr doc);

}  // namespace hbsd::dsig
