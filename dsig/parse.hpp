// Safe parsing of untrusted XML with libxml2: no DTD of any kind, no entity expansion, no
// network, no XInclude, no HUGE; size, depth and UTF-8 checked before or during the parse.
#pragma once

#include <libxml/tree.h>

#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

namespace hbsd::dsig {

struct Limits;

// Owns one xmlDoc. Move-only; the destructor never throws.
class XmlDoc {
  public:
    XmlDoc() noexcept = default;
    explicit XmlDoc(xmlDocPtr doc) noexcept : doc_(doc) {}
    XmlDoc(XmlDoc&& other) noexcept : doc_(other.release()) {}
    XmlDoc& operator=(XmlDoc&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    XmlDoc(const XmlDoc&) = delete;
    XmlDoc& operator=(const XmlDoc&) = delete;
    ~XmlDoc() { reset(); }

    xmlDocPtr get() const noexcept { return doc_; }
    xmlNodePtr root() const noexcept { return doc_ ? xmlDocGetRootElement(doc_) : nullptr; }
    explicit operator bool() const noexcept { return doc_ != nullptr; }
    xmlDocPtr release() noexcept {
        xmlDocPtr d = doc_;
        doc_ = nullptr;
        return d;
    }
    void reset(xmlDocPtr doc = nullptr) noexcept {
        if (doc_) xmlFreeDoc(doc_);
        doc_ = doc;
    }

  private:
    xmlDocPtr doc_ = nullptr;
};

// Parses `xml` (UTF-8; an encoding declaration other than UTF-8 is refused). Throws
// Error::document_too_large(size, limit) before parsing anything over limits.max_bytes, and
// Error::invalid_document(reason, line) for a DOCTYPE (stopped at the internal subset, before
// anything is declared or expanded), malformed XML, invalid UTF-8, nesting deeper than
// limits.max_depth (stopped when the element opens), or xml:id attributes (we register Ids
// ourselves), more than limits.max_nodes nodes (stopped when the limit is passed). The
// document is not yet checked against the profile.
XmlDoc parse_xml(std::string_view xml, const Limits& limits);

// Where in the parsed text the elements with one of `names` (local names) end: the byte offset
// just past the '>' of their end tag (or of "/>" for an empty-element tag), as the parser saw
// it. Lets Document::serialize write a signature into the original text instead of writing
// the whole tree out again.
struct EndTags {
    std::vector<std::string_view> names;
    std::vector<std::pair<xmlNodePtr, std::size_t>> at;
};
XmlDoc parse_xml(std::string_view xml, const Limits& limits, EndTags& ends);

// The parser options every document gets (exposed for tests): NONET, NO DTD load/attr,
// no entity substitution, no XInclude, no HUGE.
int safe_parse_options() noexcept;

}  // namespace hbsd::dsig
