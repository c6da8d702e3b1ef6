// Exclusive C14N that costs O(subtree), not O(document), with a per-Document memo.
//
// xmlsec 1.2.37 canonicalises by calling libxml2's xmlC14NExecute on the whole document with
// a node-set membership callback, so every Reference and every SignedInfo costs a walk of
// every node of the record (with 15 signatures: ~1000 elements, each with a namespace list
// built and freed). Our exc-c14n transform (same href, put in xmlsec's slot) wraps xmlsec's:
// - when the node-set is confined to one element's subtree (first set: "X and its subtree",
//   intersected; the others only intersect or subtract: what "#Id", "#Id" + enveloped and
//   SignedInfo yield), it calls the same xmlC14NExecute with the same callback, mode and
//   arguments, but on a document view whose only child is X (X's following siblings are
//   hidden for the call). Exclusive C14N adds nothing to its rendered-namespace stack for
//   nodes outside the node-set and reads in-scope namespaces through the real parents, so
//   the bytes are the same; the one thing the skipped ancestors could change (a relative
//   namespace URI makes the whole walk fail) is checked separately.
// - when the node-set is exactly "X and its subtree, without comments" (a "#Id" URI with
//   no transform before), it remembers the bytes for X. They stay right until something
//   below X changes: Document::add_signature forgets every ancestor of what it inserts.
//   Outside a C14NScope (no Document operation on this thread) nothing is remembered.
// Anything else (InclusiveNamespaces, other node-sets) goes to xmlsec's transform as is.
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

// Whether `element` declares a relative namespace URI, which libxml2's C14N refuses (the
// profile refuses a document holding one anywhere; C14N checks the ancestors it skips).
bool declares_relative_namespace(xmlNodePtr element);

// Tests: false makes every canonicalisation take xmlsec's whole-document path (the memo
// still applies). Process-wide; not for production use.
void set_subtree_c14n(bool enabled) noexcept;
// Tests: false makes the subtree path always pass xmlsec's membership callback, even for the
// sets it can do without (whole subtree; subtree minus the enveloped Signature).
void set_plain_set_c14n(bool enabled) noexcept;

// Puts our exc-c14n klass where xmlsec registered its own (lookup is by href, first match).
// Called once from init_xmlsec.
void install_exc_c14n();

}  // namespace hbsd::dsig::detail
