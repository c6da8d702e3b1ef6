// The record as the profile sees it: where each year, subject and signature slot is, which
// Id each must carry, which References each signature must have. Built once per Document.
#pragma once

#include <libxml/tree.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "dsig/c14n.hpp"
#include "dsig/document.hpp"
#include "dsig/parse.hpp"

namespace hbsd::dsig::detail {

inline constexpr char kHbNs[] = "urn:vn:hocbaso:1";
inline constexpr char kDsNs[] = "http://www.w3.org/2000/09/xmldsig#";
inline constexpr char kXadesNs[] = "http://uri.etsi.org/01903/v1.3.2#";
inline constexpr char kSignedPropertiesType[] = "http://uri.etsi.org/01903#SignedProperties";

struct Subject {
    std::string code;  // MonHoc/@Ma
    xmlNodePtr node;   // MonHoc
};

struct Year {
    std::string year;  // ThongTinNamHoc/@Nam (= NamHoc/@Nam)
    xmlNodePtr namhoc, tt, kq, chuky;
    std::vector<Subject> subjects;
};

// A ds:Signature found at one of the profile's places.
struct Slot {
    Slot(Stage st, std::size_t y, std::optional<std::size_t> s, xmlNodePtr n, std::string id)
        : stage(st), year(y), subject(s), node(n), expected_id(std::move(id)) {}
    Stage stage;                         // from the place
    std::size_t year;                    // index into Record::years
    std::optional<std::size_t> subject;  // index into Year::subjects, subject_teacher only
    xmlNodePtr node;                     // the ds:Signature
    std::string expected_id;
    std::optional<SignatureReport> checked;  // profile + crypto, computed once
    bool ordered = false;                    // checked->in_order computed
};

struct Record {
    XmlDoc doc;
    std::string code;  // R
    xmlNodePtr hb = nullptr, hs = nullptr;
    std::vector<Year> years;
    // Document order (per year: subjects, then ChuKy). Owned by pointer so that reports handed
    // out stay put when add_signature inserts a slot.
    std::vector<std::unique_ptr<Slot>> slots;
    std::unordered_set<std::string> ids;  // every Id attribute value in the document
    mutable C14NCache c14n;               // canonical bytes of referenced elements
};

// Checks what the XSD cannot (Ids, Nam copies, uniqueness, slot contents), registers the
// profile's Ids and finds the signatures. Throws Error::invalid_document.
Record analyse(XmlDoc doc);

std::string signature_id(Stage stage, std::string_view record, std::string_view year,
                         std::optional<std::string_view> subject);

// One Reference the profile requires, in SignedInfo order.
struct RefSpec {
    std::string id;  // without '#'
    bool enveloped = false;
    bool signed_properties = false;
    xmlNodePtr target = nullptr;  // the element it must resolve to; nullptr when absent
};
// Fixed order: the stage's own element (#MH-… or #KQ-…), #HS-R, #TT-R-Y, the counter-signed
// signatures (#SIG-GVCN-…, #SIG-HT-…), then the SignedProperties (#<sig Id>-SP).
std::vector<RefSpec> expected_references(const Record& rec, Stage stage, std::size_t year,
                                         std::optional<std::size_t> subject, xmlNodePtr signature);

// The slot of (stage, year, subject), or nullptr.
Slot* find_slot(const Record& rec, Stage stage, std::size_t year,
                std::optional<std::size_t> subject);
std::optional<std::size_t> find_year(const Record& rec, std::string_view year);
std::optional<std::size_t> find_subject(const Year& y, std::string_view code);

// Signature > Object > QualifyingProperties > SignedProperties, or nullptr if not so.
xmlNodePtr signed_properties_of(xmlNodePtr signature);

// Registers node/@Id as an XML ID (after the uniqueness check). Throws InvalidDocument.
void register_id(xmlDocPtr doc, xmlNodePtr node);

// Small DOM helpers.
bool is(xmlNodePtr node, const char* ns, const char* name) noexcept;
xmlNodePtr first_element(xmlNodePtr parent) noexcept;
xmlNodePtr next_element(xmlNodePtr node) noexcept;
std::optional<std::string> attr(xmlNodePtr node, const char* name);
std::string text(xmlNodePtr node);
long line_of(xmlNodePtr node) noexcept;

}  // namespace hbsd::dsig::detail
