#include "dsig/c14n.hpp"

#include <xmlsec/list.h>
#include <xmlsec/nodeset.h>

#include <cstring>

#include "protocol/error.hpp"

namespace hbsd::dsig::detail {
namespace {

thread_local C14NCache* t_cache = nullptr;

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

// The element whose subtree (without comments) is exactly `nodes`, or nullptr.
xmlNodePtr whole_element(xmlSecNodeSetPtr nodes) noexcept {
    if (nodes == nullptr || nodes->next != nodes || nodes->children != nullptr ||
        nodes->type != xmlSecNodeSetTreeWithoutComments || nodes->nodes == nullptr ||
        nodes->nodes->nodeNr != 1)
        return nullptr;
    xmlNodePtr n = nodes->nodes->nodeTab[0];
    return n != nullptr && n->type == XML_ELEMENT_NODE && n->doc == nodes->doc ? n : nullptr;
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
    xmlNodePtr element =
        c->plain && cache != nullptr && cache->doc == nodes->doc ? whole_element(nodes) : nullptr;
    if (element == nullptr) {
        // Not memoisable: xmlsec's transform writes straight to our successor.
        c->inner->next = t->next;
        int rc = c->inner->id->pushXml(c->inner, nodes, tctx);
        c->inner->next = nullptr;
        if (t->next == nullptr && rc >= 0)
            rc = xmlSecBufferAppend(&t->outBuf, xmlSecBufferGetData(&c->inner->outBuf),
                                    xmlSecBufferGetSize(&c->inner->outBuf));
        if (rc < 0) return -1;
        t->status = xmlSecTransformStatusFinished;
        return 0;
    }
    auto it = cache->bytes.find(element);
    if (it == cache->bytes.end()) {
        c->inner->next = nullptr;  // into the inner transform's own buffer, to keep a copy
        if (c->inner->id->pushXml(c->inner, nodes, tctx) < 0) return -1;
        xmlSecBufferPtr out = &c->inner->outBuf;
        std::string bytes(reinterpret_cast<const char*>(xmlSecBufferGetData(out)),
                          xmlSecBufferGetSize(out));
        try {
            it = cache->bytes.emplace(element, std::move(bytes)).first;
        } catch (...) {
            return -1;
        }
    }
    if (emit(t, it->second, tctx) < 0) return -1;
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
