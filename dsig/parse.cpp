#include "dsig/parse.hpp"

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>

#include <climits>
#include <optional>
#include <string>

#include "dsig/document.hpp"
#include "dsig/xmlsec.hpp"
#include "protocol/error.hpp"

namespace hbsd::dsig {
namespace {

// Per-parse state, reached from the SAX callbacks through ctxt->_private.
struct ParseState {
    int max_depth = 0;
    int depth = 0;
    std::size_t max_nodes = 0;
    std::size_t nodes = 0;
    std::optional<std::string> reason;  // our own refusal (DOCTYPE, depth), first one wins
    std::optional<long> line;
    std::string first_error;  // libxml2's first error message
    std::optional<long> first_error_line;
    EndTags* ends = nullptr;
};

ParseState* state_of(void* ctx) {
    return static_cast<ParseState*>(static_cast<xmlParserCtxtPtr>(ctx)->_private);
}

void refuse(void* ctx, std::string reason) {
    auto* ctxt = static_cast<xmlParserCtxtPtr>(ctx);
    ParseState* st = state_of(ctx);
    if (!st->reason) {
        st->reason = std::move(reason);
        st->line = xmlSAX2GetLineNumber(ctxt);
    }
    xmlStopParser(ctxt);
}

// Called when <!DOCTYPE name ExternalID is read, before an internal subset is parsed: nothing
// has been declared, loaded or expanded yet.
void on_internal_subset(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
    refuse(ctx, "DOCTYPE is not allowed");
}

bool count_node(void* ctx) {
    ParseState* st = state_of(ctx);
    if (++st->nodes <= st->max_nodes) return true;
    refuse(ctx, "more than " + std::to_string(st->max_nodes) + " nodes");
    return false;
}

void on_comment(void* ctx, const xmlChar* value) {
    if (count_node(ctx)) xmlSAX2Comment(ctx, value);
}

void on_pi(void* ctx, const xmlChar* target, const xmlChar* data) {
    if (count_node(ctx)) xmlSAX2ProcessingInstruction(ctx, target, data);
}

void on_cdata(void* ctx, const xmlChar* value, int len) {
    if (count_node(ctx)) xmlSAX2CDataBlock(ctx, value, len);
}

void on_start_element(void* ctx, const xmlChar* localname, const xmlChar* prefix,
                      const xmlChar* URI, int nb_namespaces, const xmlChar** namespaces,
                      int nb_attributes, int nb_defaulted, const xmlChar** attributes) {
    ParseState* st = state_of(ctx);
    if (++st->depth > st->max_depth) {
        refuse(ctx, "elements nested deeper than " + std::to_string(st->max_depth));
        return;
    }
    if (!count_node(ctx)) return;
    xmlSAX2StartElementNs(ctx, localname, prefix, URI, nb_namespaces, namespaces, nb_attributes,
                          nb_defaulted, attributes);
}

void on_end_element(void* ctx, const xmlChar* localname, const xmlChar* prefix,
                    const xmlChar* URI) {
    ParseState* st = state_of(ctx);
    --st->depth;
    if (st->ends != nullptr) {
        // Called once the tag's '>' is consumed, before SAX2 pops the element off ctxt->node.
        auto* ctxt = static_cast<xmlParserCtxtPtr>(ctx);
        const std::string_view name(reinterpret_cast<const char*>(localname));
        for (std::string_view wanted : st->ends->names)
            if (name == wanted && ctxt->node != nullptr && ctxt->input != nullptr) {
                const auto offset = static_cast<std::size_t>(ctxt->input->consumed) +
                                    static_cast<std::size_t>(ctxt->input->cur - ctxt->input->base);
                st->ends->at.emplace_back(ctxt->node, offset);
            }
    }
    xmlSAX2EndElementNs(ctx, localname, prefix, URI);
}

void on_error(void* user, xmlErrorPtr err) {
    auto* st = static_cast<ParseState*>(user);
    if (err == nullptr || !st->first_error.empty()) return;
    if (err->level < XML_ERR_ERROR) return;
    st->first_error = err->message != nullptr ? err->message : "malformed XML";
    while (!st->first_error.empty() &&
           (st->first_error.back() == '\n' || st->first_error.back() == ' '))
        st->first_error.pop_back();
    if (err->line > 0) st->first_error_line = err->line;
}

// The serror callback is called with ctxt->userData (the context itself) for parser errors.
void on_parser_error(void* ctx, xmlErrorPtr err) {
    on_error(state_of(ctx), err);
}

struct CtxtDeleter {
    void operator()(xmlParserCtxtPtr c) const noexcept {
        if (c->myDoc != nullptr) {
            xmlFreeDoc(c->myDoc);
            c->myDoc = nullptr;
        }
        xmlFreeParserCtxt(c);
    }
};

}  // namespace

int safe_parse_options() noexcept {
    // Deliberately absent: XML_PARSE_NOENT, DTDLOAD, DTDATTR, DTDVALID, XINCLUDE, HUGE, and
    // IGNORE_ENC (it would also hide the declared encoding, which we refuse unless UTF-8).
    // NONET: never any network.
    // COMPACT: short text nodes live inside the node, one malloc fewer each (the tree is the
    // same).
    return XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_COMPACT;
}

XmlDoc parse_xml(std::string_view xml, const Limits& limits) {
    EndTags none;
    return parse_xml(xml, limits, none);
}

XmlDoc parse_xml(std::string_view xml, const Limits& limits, EndTags& ends) {
    detail::init_xmlsec();
    if (xml.size() > limits.max_bytes)
        throw Error::document_too_large(static_cast<long long>(xml.size()),
                                        static_cast<long long>(limits.max_bytes));
    if (xml.size() > static_cast<std::size_t>(INT_MAX))
        throw Error::document_too_large(static_cast<long long>(xml.size()), INT_MAX);
    // Autodetection would switch to UTF-16/UCS-4/EBCDIC on these first bytes; only UTF-8 is ours.
    if (xml.size() >= 2) {
        auto b0 = static_cast<unsigned char>(xml[0]), b1 = static_cast<unsigned char>(xml[1]);
        if (b0 == 0 || b1 == 0 || (b0 == 0xFE && b1 == 0xFF) || (b0 == 0xFF && b1 == 0xFE) ||
            (b0 == 0x4C && b1 == 0x6F))
            throw Error::invalid_document("the document is not UTF-8", 1);
    }

    // A new context (and name dictionary) per document, on purpose: a context reused per thread
    // was measured 1 % faster, but its dictionary would be shared by every document parsed on
    // that thread, and libxml2's dictionaries are not safe to use from two threads at once, so
    // a Document could no longer be handed to another thread while its parser's thread parses.
    std::unique_ptr<xmlParserCtxt, CtxtDeleter> ctxt(
        xmlCreateMemoryParserCtxt(xml.data(), static_cast<int>(xml.size())));
    if (!ctxt) throw Error::internal("xmlCreateMemoryParserCtxt failed");
    ParseState st;
    st.max_depth = limits.max_depth;
    st.max_nodes = limits.max_nodes;
    if (!ends.names.empty()) st.ends = &ends;
    ctxt->_private = &st;
    xmlCtxtUseOptions(ctxt.get(), safe_parse_options());
    // After UseOptions, which may reset handlers: ours wrap SAX2's tree builder.
    xmlSAXHandlerPtr sax = ctxt->sax;
    sax->internalSubset = on_internal_subset;
    sax->externalSubset = on_internal_subset;
    sax->startElementNs = on_start_element;
    sax->endElementNs = on_end_element;
    sax->comment = on_comment;
    sax->processingInstruction = on_pi;
    sax->cdataBlock = on_cdata;
    sax->serror = on_parser_error;
    sax->error = nullptr;
    sax->warning = nullptr;
    sax->fatalError = nullptr;
    // libxml2 also reports some errors through the thread's structured handler.
    xmlSetStructuredErrorFunc(&st, on_error);

    int rc = xmlParseDocument(ctxt.get());
    xmlSetStructuredErrorFunc(nullptr, nullptr);

    if (st.reason) throw Error::invalid_document(*st.reason, st.line);
    if (rc != 0 || !ctxt->wellFormed || ctxt->myDoc == nullptr) {
        if (st.first_error.empty()) {
            const xmlError* e = &ctxt->lastError;
            if (e->message != nullptr) {
                st.first_error = e->message;
                if (e->line > 0) st.first_error_line = e->line;
            }
        }
        throw Error::invalid_document(
            st.first_error.empty() ? std::string("malformed XML") : st.first_error,
            st.first_error_line);
    }
    XmlDoc doc(ctxt->myDoc);
    ctxt->myDoc = nullptr;
    if (doc.get()->intSubset != nullptr || doc.get()->extSubset != nullptr)
        throw Error::invalid_document("DOCTYPE is not allowed", 1);
    if (doc.get()->encoding != nullptr && xmlStrcasecmp(doc.get()->encoding, BAD_CAST "UTF-8") != 0)
        throw Error::invalid_document("the encoding must be UTF-8", 1);
    // The parser registers xml:id attributes as IDs on its own; References must only ever
    // resolve to the Ids the profile registers, so xml:id has no place here.
    if (doc.get()->ids != nullptr) throw Error::invalid_document("xml:id is not allowed", 1);
    if (doc.root() == nullptr) throw Error::invalid_document("no root element", 1);
    return doc;
}

}  // namespace hbsd::dsig
