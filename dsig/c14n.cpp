#include "dsig/c14n.hpp"

#include <libxml/c14n.h>
#include <libxml/uri.h>
#include <libxml/xmlIO.h>
#include <xmlsec/list.h>
#include <xmlsec/nodeset.h>

#include <atomic>
#include <cstring>

#include "protocol/error.hpp"

namespace hbsd::dsig::detail {
namespace {

thread_local C14NCache* t_cache = nullptr;
std::atomic<bool> g_subtree{true};
std::atomic<bool> g_plain_sets{true};

// Our object: xmlSecTransform, then the wrapped xmlsec exc-c14n transform.
struct Ctx {
    xmlSecTransformPtr inner;
    bool plain;  // no InclusiveNamespaces: the bytes depend on the node-set alone
};
constexpr xmlSecSize kObjSize = sizeof(xmlSecTransform) + sizeof(Ctx);

Ctx* ctx_of(xmlSecTransformPtr t) noexcept {
    return reinterpret_cast<Ctx*>(reinterpret_cast<xmlSecByte*>(t) + sizeof(xmlSecTransform));
}

bool is_ours(xmlSecTransformPtr t) noexcept {
    return t != nullptr && t->id == exc_c14n_transform() && xmlSecTransformCheckSize(t, kObjSize);
}

int initialize(xmlSecTransformPtr t) {
    if (!is_ours(t)) return -1;
    Ctx* c = ctx_of(t);
    c->inner = xmlSecTransformCreate(xmlSecTransformExclC14NId);
    c->plain = true;
    return c->inner != nullptr ? 0 : -1;
}

void finalize(xmlSecTransformPtr t) {
    if (!is_ours(t)) return;
    Ctx* c = ctx_of(t);
    if (c->inner != nullptr) xmlSecTransformDestroy(c->inner);
    std::memset(c, 0, sizeof *c);
}

int read_node(xmlSecTransformPtr t, xmlNodePtr node, xmlSecTransformCtxPtr tctx) {
    if (!is_ours(t)) return -1;
    Ctx* c = ctx_of(t);
    for (xmlNodePtr n = node->children; n != nullptr; n = n->next)
        if (n->type == XML_ELEMENT_NODE) c->plain = false;
    c->inner->hereNode = node;
    return c->inner->id->readNode(c->inner, node, tctx);
}

// The node-set xmlsec builds is a ring of sets combined in order. For a "#Id" Reference it is
// [all of the document, X and its subtree without comments], then e.g. minus the enveloping
// Signature; for SignedInfo, [SignedInfo and its subtree].
struct Shape {
    xmlNodePtr apex = nullptr;  // every visible node is in apex's subtree
    bool whole = false;         // exactly apex's subtree without comments
    // Exactly apex's subtree without comments and without this element's subtree (what the
    // enveloped-signature transform leaves of "#Id": the Signature inside the element).
    xmlNodePtr cut = nullptr;
};

bool is_below(xmlNodePtr node, xmlNodePtr apex) noexcept {
    for (xmlNodePtr n = node != nullptr ? node->parent : nullptr; n != nullptr; n = n->parent)
        if (n == apex) return true;
    return false;
}

Shape shape_of(xmlSecNodeSetPtr nodes) noexcept {
    Shape shape;
    if (nodes == nullptr) return shape;
    xmlSecNodeSetPtr tree = nullptr;
    xmlSecNodeSetPtr inverted = nullptr;
    int trees = 0, inverts = 0, others = 0;
    xmlSecNodeSetPtr s = nodes;
    do {
        // Unions could add nodes anywhere; intersections and subtractions only take away.
        if (s->op != xmlSecNodeSetIntersection && s->op != xmlSecNodeSetSubtraction) return {};
        const bool everything = s->type == xmlSecNodeSetNormal && s->nodes == nullptr &&
                                s->op == xmlSecNodeSetIntersection;
        const bool single_tree =
            s->op == xmlSecNodeSetIntersection &&
            (s->type == xmlSecNodeSetTree || s->type == xmlSecNodeSetTreeWithoutComments) &&
            s->nodes != nullptr && s->nodes->nodeNr == 1 && s->children == nullptr;
        // "Everything but X and its subtree (comments too)": the enveloped transform's set.
        const bool single_inverted_tree =
            s->op == xmlSecNodeSetIntersection && s->type == xmlSecNodeSetTreeInvert &&
            s->nodes != nullptr && s->nodes->nodeNr == 1 && s->children == nullptr;
        if (single_tree) {
            tree = s;
            ++trees;
        } else if (single_inverted_tree) {
            inverted = s;
            ++inverts;
        } else if (!everything) {
            ++others;
        }
        s = s->next;
    } while (s != nodes);
    if (trees != 1) return shape;
    xmlNodePtr n = tree->nodes->nodeTab[0];
    if (n == nullptr || n->type != XML_ELEMENT_NODE || n->doc != nodes->doc) return shape;
    shape.apex = n;
    const bool no_comments = tree->type == xmlSecNodeSetTreeWithoutComments;
    shape.whole = others == 0 && inverts == 0 && no_comments;
    if (others == 0 && inverts == 1 && no_comments) {
        xmlNodePtr x = inverted->nodes->nodeTab[0];
        if (x != nullptr && x->type == XML_ELEMENT_NODE && is_below(x, n)) shape.cut = x;
    }
    return shape;
}

int visible(void* nodes, xmlNodePtr node, xmlNodePtr parent) {
    return xmlSecNodeSetContains(static_cast<xmlSecNodeSetPtr>(nodes), node, parent);
}

// libxml2 refuses relative namespace URIs on every element it walks; we walk fewer.
bool relative_namespace_above(xmlNodePtr apex) {
    for (xmlNodePtr a = apex->parent; a != nullptr && a->type == XML_ELEMENT_NODE; a = a->parent)
        if (declares_relative_namespace(a)) return true;
    return false;
}

// Takes `x` out of its parent's child list for the object's lifetime and puts it back exactly
// where it was; x keeps its parent pointer (in-scope namespaces below it are not read).
class Hidden {
  public:
    explicit Hidden(xmlNodePtr x) noexcept : x_(x) {
        if (x_ == nullptr) return;
        if (x_->prev != nullptr)
            x_->prev->next = x_->next;
        else
            x_->parent->children = x_->next;
        if (x_->next != nullptr)
            x_->next->prev = x_->prev;
        else
            x_->parent->last = x_->prev;
    }
    ~Hidden() {
        if (x_ == nullptr) return;
        if (x_->prev != nullptr)
            x_->prev->next = x_;
        else
            x_->parent->children = x_;
        if (x_->next != nullptr)
            x_->next->prev = x_;
        else
            x_->parent->last = x_;
    }
    Hidden(const Hidden&) = delete;
    Hidden& operator=(const Hidden&) = delete;

  private:
    xmlNodePtr x_;
};

// libxml2's exclusive C14N of `nodes` (confined to `apex`'s subtree), walking only that
// subtree: the same call xmlsec makes, on a view whose document element is `apex`.
// When the shape says the set is all of the view without comments (`whole`, or `cut` hidden
// for the call), no membership callback is given: libxml2 then treats every node as visible,
// which is that very set, and skips a callback that walks up to the root for every node,
// attribute and namespace (most of the cost of canonicalising a record's signatures).
bool c14n_subtree(xmlNodePtr apex, xmlSecNodeSetPtr nodes, const Shape& shape, std::string& out) {
    if (relative_namespace_above(apex)) return false;
    xmlDocPtr view = xmlNewDoc(BAD_CAST "1.0");
    xmlOutputBufferPtr buf = xmlAllocOutputBuffer(nullptr);
    bool ok = false;
    if (view != nullptr && buf != nullptr) {
        xmlNodePtr next = apex->next;
        view->children = view->last = apex;  // borrowed, never owned
        apex->next = nullptr;
        int rc;
        if (g_plain_sets.load(std::memory_order_relaxed) && (shape.whole || shape.cut)) {
            Hidden hidden(shape.cut);
            rc = xmlC14NExecute(view, nullptr, nullptr, XML_C14N_EXCLUSIVE_1_0, nullptr, 0, buf);
        } else {
            rc = xmlC14NExecute(view, visible, nodes, XML_C14N_EXCLUSIVE_1_0, nullptr, 0, buf);
        }
        apex->next = next;
        view->children = view->last = nullptr;
        if (rc >= 0) {
            out.assign(reinterpret_cast<const char*>(xmlOutputBufferGetContent(buf)),
                       xmlOutputBufferGetSize(buf));
            ok = true;
        }
    }
    if (buf != nullptr) xmlOutputBufferClose(buf);
    if (view != nullptr) xmlFreeDoc(view);
    return ok;
}

int emit(xmlSecTransformPtr t, const std::string& bytes, xmlSecTransformCtxPtr tctx) {
    const auto* data = reinterpret_cast<const xmlSecByte*>(bytes.data());
    const auto size = static_cast<xmlSecSize>(bytes.size());
    if (t->next != nullptr) return xmlSecTransformPushBin(t->next, data, size, 1, tctx);
    return xmlSecBufferAppend(&t->outBuf, data, size);
}

int push_xml(xmlSecTransformPtr t, xmlSecNodeSetPtr nodes, xmlSecTransformCtxPtr tctx) {
    if (!is_ours(t) || nodes == nullptr) return -1;
    if (t->status == xmlSecTransformStatusWorking || t->status == xmlSecTransformStatusFinished)
        return 0;
    if (t->status != xmlSecTransformStatusNone) return -1;
    t->status = xmlSecTransformStatusWorking;
    Ctx* c = ctx_of(t);
    C14NCache* cache = t_cache;
    const Shape shape = c->plain ? shape_of(nodes) : Shape{};
    xmlNodePtr apex = g_subtree.load(std::memory_order_relaxed) ? shape.apex : nullptr;
    xmlNodePtr element =
        cache != nullptr && cache->doc == nodes->doc && shape.whole ? shape.apex : nullptr;

    std::string bytes;
    const std::string* result = &bytes;
    try {
        if (element != nullptr) {
            auto it = cache->bytes.find(element);
            if (it != cache->bytes.end()) result = &it->second;
        }
        if (result == &bytes) {
            if (apex != nullptr) {
                if (!c14n_subtree(apex, nodes, shape, bytes)) return -1;
            } else if (element == nullptr) {
                // Neither fast nor memoisable: xmlsec's transform writes to our successor.
                c->inner->next = t->next;
                int rc = c->inner->id->pushXml(c->inner, nodes, tctx);
                c->inner->next = nullptr;
                if (t->next == nullptr && rc >= 0)
                    rc = xmlSecBufferAppend(&t->outBuf, xmlSecBufferGetData(&c->inner->outBuf),
                                            xmlSecBufferGetSize(&c->inner->outBuf));
                if (rc < 0) return -1;
                t->status = xmlSecTransformStatusFinished;
                return 0;
            } else {
                c->inner->next = nullptr;  // into the inner transform's own buffer, to keep it
                if (c->inner->id->pushXml(c->inner, nodes, tctx) < 0) return -1;
                xmlSecBufferPtr out = &c->inner->outBuf;
                bytes.assign(reinterpret_cast<const char*>(xmlSecBufferGetData(out)),
                             xmlSecBufferGetSize(out));
            }
            if (element != nullptr) result = &(cache->bytes[element] = std::move(bytes));
        }
    } catch (...) {
        return -1;
    }
    if (emit(t, *result, tctx) < 0) return -1;
    t->status = xmlSecTransformStatusFinished;
    return 0;
}

// Pull mode (not used by the profile's chains, present so that xmlsec sees binary output):
// xmlsec's transform does it all, reading from our predecessor.
int pop_bin(xmlSecTransformPtr t, xmlSecByte* data, xmlSecSize max, xmlSecSize* size,
            xmlSecTransformCtxPtr tctx) {
    if (!is_ours(t)) return -1;
    Ctx* c = ctx_of(t);
    c->inner->prev = t->prev;
    int rc = c->inner->id->popBin(c->inner, data, max, size, tctx);
    c->inner->prev = nullptr;
    return rc;
}

const xmlSecTransformKlass kExcC14N = {
    sizeof(xmlSecTransformKlass),
    kObjSize,
    BAD_CAST "hbsd-exc-c14n",
    xmlSecHrefExcC14N,
    xmlSecTransformUsageC14NMethod | xmlSecTransformUsageDSigTransform,
    initialize,
    finalize,
    read_node,
    nullptr,  // writeNode
    nullptr,  // setKeyReq
    nullptr,  // setKey
    nullptr,  // verify
    xmlSecTransformDefaultGetDataType,
    nullptr,  // pushBin: XML in only, as xmlsec's
    pop_bin,
    push_xml,
    nullptr,  // popXml
    nullptr,  // execute
    nullptr,
    nullptr,
};

}  // namespace

bool declares_relative_namespace(xmlNodePtr element) {
    for (xmlNsPtr ns = element->nsDef; ns != nullptr; ns = ns->next) {
        if (ns->href == nullptr || ns->href[0] == 0) continue;
        xmlURIPtr uri = xmlParseURI(reinterpret_cast<const char*>(ns->href));
        const bool relative = uri == nullptr || uri->scheme == nullptr;
        xmlFreeURI(uri);
        if (relative) return true;
    }
    return false;
}

void C14NCache::forget_path(xmlNodePtr node) noexcept {
    for (xmlNodePtr n = node; n != nullptr; n = n->parent) bytes.erase(n);
}

C14NScope::C14NScope(C14NCache& cache) noexcept : previous_(t_cache) {
    t_cache = &cache;
}
C14NScope::~C14NScope() {
    t_cache = previous_;
}

xmlSecTransformId exc_c14n_transform() noexcept {
    return &kExcC14N;
}

void set_subtree_c14n(bool enabled) noexcept {
    g_subtree.store(enabled);
}

void set_plain_set_c14n(bool enabled) noexcept {
    g_plain_sets.store(enabled);
}

void install_exc_c14n() {
    xmlSecPtrListPtr ids = xmlSecTransformIdsGet();
    const xmlSecSize n = xmlSecPtrListGetSize(ids);
    for (xmlSecSize i = 0; i < n; ++i) {
        if (xmlSecPtrListGetItem(ids, i) == static_cast<const void*>(xmlSecTransformExclC14NId)) {
            if (xmlSecPtrListSet(ids, const_cast<void*>(static_cast<const void*>(&kExcC14N)), i) <
                0)
                throw Error::internal("replacing xmlsec's exc-c14n failed");
            return;
        }
    }
    throw Error::internal("xmlsec's exc-c14n transform is not registered");
}

}  // namespace hbsd::dsig::detail
