// Exclusive C14N with a per-Document memo of the canonical bytes of whole elements.
//
// xmlsec 1.2.37 canonicalises a Reference by letting libxml2 walk the whole document and ask
// for each node whether it is in the node-set, so every Reference costs O(document). The
// profile makes every signature reference #HS-R and #TT-R-Y, and the later stages #KQ-R-Y and
// the earlier signatures: a school-stage Sign digests the same few elements dozens of times.
// Our exc-c14n transform (same href, registered in xmlsec's place) wraps xmlsec's own: it
// runs it unchanged, and when the node-set is exactly "this element and its subtree, without
// comments" (what a "#Id" URI yields, no other transform before it) it remembers the bytes
// for that element. Exclusive C14N of an element depends only on its subtree and the
// namespaces in scope, so the bytes stay right until something below the element changes:
// Document::add_signature forgets every remembered ancestor of what it inserts. Outside a
// C14NScope (no Document operation on this thread) nothing is remembered.
#pragma once

#include <libxml/tree.h>
#include <xmlsec/transforms.h>

#include <string>
#include <unordered_map>

namespace hbsd::dsig::detail {

struct C14NCache {
    xmlDocPtr doc = nullptr;
    std::unordered_map<xmlNodePtr, std::string> bytes;
    // `node` and every ancestor of it changed (a child was added or removed below them).
    void forget_path(xmlNodePtr node) noexcept;
};

// Makes `cache` the one our transform uses on this thread, for the scope's lifetime.
class C14NScope {
  public:
    explicit C14NScope(C14NCache& cache) noexcept;
    ~C14NScope();
    C14NScope(const C14NScope&) = delete;
    C14NScope& operator=(const C14NScope&) = delete;

  private:
    C14NCache* previous_;
};

xmlSecTransformId exc_c14n_transform() noexcept;

// Puts our exc-c14n klass where xmlsec registered its own (lookup is by href, first match).
// Called once from init_xmlsec.
void install_exc_c14n();

}  // namespace hbsd::dsig::detail
