#include "dsig/xsd.hpp"

#include <libxml/xmlschemas.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "dsig/xmlsec.hpp"
#include "protocol/error.hpp"

namespace hbsd::dsig {
namespace {

struct SchemaError {
    std::string message;
    std::optional<long> line;
};

void on_schema_error(void* user, xmlErrorPtr err) {
    auto* e = static_cast<SchemaError*>(user);
    if (e == nullptr || err == nullptr || !e->message.empty()) return;
    e->message = err->message != nullptr ? err->message : "schema violation";
    while (!e->message.empty() && (e->message.back() == '\n' || e->message.back() == ' '))
        e->message.pop_back();
    if (err->line > 0) e->line = err->line;
}

xmlSchemaPtr compiled_schema() {
    static std::once_flag once;
    static xmlSchemaPtr schema = nullptr;
    static std::string failure;
    std::call_once(once, [] {
        detail::init_xmlsec();
        std::string_view xsd = embedded_schema();
        xmlSchemaParserCtxtPtr pctxt =
            xmlSchemaNewMemParserCtxt(xsd.data(), static_cast<int>(xsd.size()));
        if (pctxt == nullptr) {
            failure = "xmlSchemaNewMemParserCtxt failed";
            return;
        }
        SchemaError err;
        xmlSchemaSetParserStructuredErrors(pctxt, on_schema_error, &err);
        schema = xmlSchemaParse(pctxt);
        xmlSchemaFreeParserCtxt(pctxt);
        if (schema == nullptr)
            failure = "the built-in profile XSD does not compile: " + err.message;
        // Kept for the life of the process, shared read-only by every validation.
    });
    if (schema == nullptr) throw Error::internal(failure);
    return schema;
}

struct ValidCtxtDeleter {
    void operator()(xmlSchemaValidCtxtPtr v) const noexcept { xmlSchemaFreeValidCtxt(v); }
};

}  // namespace

void validate_schema(xmlDocPtr doc) {
    xmlSchemaPtr schema = compiled_schema();
    thread_local std::unique_ptr<xmlSchemaValidCtxt, ValidCtxtDeleter> vctxt;
    if (!vctxt) {
        vctxt.reset(xmlSchemaNewValidCtxt(schema));
        if (!vctxt) throw Error::internal("xmlSchemaNewValidCtxt failed");
    }
    SchemaError err;
    xmlSchemaSetValidStructuredErrors(vctxt.get(), on_schema_error, &err);
    int rc = xmlSchemaValidateDoc(vctxt.get(), doc);
    xmlSchemaSetValidStructuredErrors(vctxt.get(), nullptr, nullptr);
    if (rc != 0) {
        if (rc < 0) throw Error::internal("schema validation failed internally");
        throw Error::invalid_document(
            "schema: " + (err.message.empty() ? std::string("violation") : err.message), err.line);
    }
}

}  // namespace hbsd::dsig
