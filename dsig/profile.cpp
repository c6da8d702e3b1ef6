#include "dsig/profile.hpp"

#include "dsig/c14n.hpp"

#include <libxml/uri.h>
#include <libxml/valid.h>

#include <cstring>

#include "protocol/error.hpp"

namespace hbsd::dsig::detail {

bool is(xmlNodePtr node, const char* ns, const char* name) noexcept {
    return node != nullptr && node->type == XML_ELEMENT_NODE && node->ns != nullptr &&
           std::strcmp(reinterpret_cast<const char*>(node->name), name) == 0 &&
           std::strcmp(reinterpret_cast<const char*>(node->ns->href), ns) == 0;
}

xmlNodePtr next_element(xmlNodePtr node) noexcept {
    for (xmlNodePtr n = node != nullptr ? node->next : nullptr; n != nullptr; n = n->next)
        if (n->type == XML_ELEMENT_NODE) return n;
    return nullptr;
}

xmlNodePtr first_element(xmlNodePtr parent) noexcept {
    for (xmlNodePtr n = parent != nullptr ? parent->children : nullptr; n != nullptr; n = n->next)
        if (n->type == XML_ELEMENT_NODE) return n;
    return nullptr;
}

std::optional<std::string> attr(xmlNodePtr node, const char* name) {
    if (node == nullptr) return std::nullopt;
    xmlChar* v = xmlGetNoNsProp(node, BAD_CAST name);
    if (v == nullptr) return std::nullopt;
    std::string s(reinterpret_cast<const char*>(v));
    xmlFree(v);
    return s;
}

std::string text(xmlNodePtr node) {
    if (node == nullptr) return {};
    xmlChar* v = xmlNodeGetContent(node);
    if (v == nullptr) return {};
    std::string s(reinterpret_cast<const char*>(v));
    xmlFree(v);
    return s;
}

long line_of(xmlNodePtr node) noexcept {
    return node != nullptr ? xmlGetLineNo(node) : 0;
}

namespace {

[[noreturn]] void bad(std::string reason, xmlNodePtr where) {
    long line = line_of(where);
    throw Error::invalid_document(reason, line > 0 ? std::optional<long>(line) : std::nullopt);
}

// Every Id attribute of the document, whatever element carries it, must be unique: References
// name elements by Id, so two candidates would make "the element with that Id" ambiguous.
void collect_ids(xmlNodePtr node, std::unordered_set<std::string>& ids) {
    for (xmlNodePtr n = node; n != nullptr; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        // C14N refuses relative namespace URIs: a document holding one anywhere could not
        // have any of its signatures checked by other verifiers.
        if (declares_relative_namespace(n)) bad("relative namespace URI", n);
        for (xmlAttrPtr a = n->properties; a != nullptr; a = a->next) {
            if (a->ns != nullptr || std::strcmp(reinterpret_cast<const char*>(a->name), "Id") != 0)
                continue;
            xmlChar* v = xmlNodeListGetString(n->doc, a->children, 1);
            std::string value = v != nullptr ? reinterpret_cast<const char*>(v) : "";
            xmlFree(v);
            if (!ids.insert(value).second) bad("duplicate Id \"" + value + "\"", n);
        }
        collect_ids(n->children, ids);
    }
}

}  // namespace

void register_id(xmlDocPtr doc, xmlNodePtr node) {
    xmlAttrPtr a = xmlHasNsProp(node, BAD_CAST "Id", nullptr);
    if (a == nullptr) bad("missing Id", node);
    xmlChar* v = xmlNodeListGetString(doc, a->children, 1);
    xmlIDPtr id = v != nullptr ? xmlAddID(nullptr, doc, v, a) : nullptr;
    xmlFree(v);
    if (id == nullptr) bad("Id cannot be registered (duplicate?)", node);
}

namespace {

void expect_id(xmlDocPtr doc, xmlNodePtr node, const std::string& expected, const char* what) {
    auto id = attr(node, "Id");
    if (!id || *id != expected)
        bad(std::string(what) + "/@Id is \"" + id.value_or("") + "\", the profile requires \"" +
                expected + "\"",
            node);
    register_id(doc, node);
}

}  // namespace

std::string signature_id(Stage stage, std::string_view record, std::string_view year,
                         std::optional<std::string_view> subject) {
    std::string tail = std::string(record) + "-" + std::string(year);
    switch (stage) {
        case Stage::subject_teacher:
            return "SIG-GVBM-" + tail + "-" + std::string(subject.value_or(""));
        case Stage::homeroom_teacher:
            return "SIG-GVCN-" + tail;
        case Stage::principal:
            return "SIG-HT-" + tail;
        case Stage::school:
            return "SIG-TRUONG-" + tail;
    }
    return {};
}

xmlNodePtr signed_properties_of(xmlNodePtr signature) {
    xmlNodePtr obj = nullptr;
    for (xmlNodePtr c = first_element(signature); c != nullptr; c = next_element(c))
        if (is(c, kDsNs, "Object")) obj = c;
    xmlNodePtr qp = first_element(obj);
    if (!is(qp, kXadesNs, "QualifyingProperties")) return nullptr;
    xmlNodePtr sp = first_element(qp);
    return is(sp, kXadesNs, "SignedProperties") ? sp : nullptr;
}

Record analyse(XmlDoc doc) {
    Record rec;
    rec.doc = std::move(doc);
    xmlDocPtr d = rec.doc.get();
    rec.c14n.doc = d;
    xmlNodePtr root = rec.doc.root();
    if (!is(root, kHbNs, "HocBa")) bad("the root element is not HocBa", root);
    collect_ids(root, rec.ids);

    rec.hb = root;
    rec.hs = first_element(root);
    if (!is(rec.hs, kHbNs, "HocSinh")) bad("HocSinh missing", root);
    rec.code = text(first_element(rec.hs));  // MaDinhDanh, pattern-checked by the XSD
    expect_id(d, rec.hb, "HB-" + rec.code, "HocBa");
    expect_id(d, rec.hs, "HS-" + rec.code, "HocSinh");

    for (xmlNodePtr nh = next_element(rec.hs); nh != nullptr; nh = next_element(nh)) {
        Year y;
        y.namhoc = nh;
        y.tt = first_element(nh);
        y.kq = next_element(y.tt);
        y.chuky = next_element(y.kq);
        if (!is(y.tt, kHbNs, "ThongTinNamHoc") || !is(y.kq, kHbNs, "KetQua") ||
            !is(y.chuky, kHbNs, "ChuKy"))
            bad("NamHoc must hold ThongTinNamHoc, KetQua, ChuKy", nh);
        y.year = attr(y.tt, "Nam").value_or("");
        if (attr(nh, "Nam").value_or("") != y.year)
            bad("NamHoc/@Nam \"" + attr(nh, "Nam").value_or("") +
                    "\" differs from ThongTinNamHoc/@Nam \"" + y.year + "\"",
                nh);
        if (find_year(rec, y.year)) bad("year " + y.year + " appears twice", nh);
        std::string ry = rec.code + "-" + y.year;
        expect_id(d, y.tt, "TT-" + ry, "ThongTinNamHoc");
        expect_id(d, y.kq, "KQ-" + ry, "KetQua");
        for (xmlNodePtr mh = first_element(first_element(y.kq)); mh != nullptr;
             mh = next_element(mh)) {
            std::string s = attr(mh, "Ma").value_or("");
            if (find_subject(y, s)) bad("subject " + s + " appears twice in " + y.year, mh);
            expect_id(d, mh, "MH-" + ry + "-" + s, "MonHoc");
            y.subjects.push_back({s, mh});
        }
        rec.years.push_back(std::move(y));
    }

    // Signature slots, in document order. The XSD allowed any ds: element there.
    for (std::size_t yi = 0; yi < rec.years.size(); ++yi) {
        const Year& y = rec.years[yi];
        for (std::size_t si = 0; si < y.subjects.size(); ++si) {
            xmlNodePtr last = nullptr;
            for (xmlNodePtr c = first_element(y.subjects[si].node); c != nullptr;
                 c = next_element(c))
                last = c;
            if (last == nullptr || last->ns == nullptr ||
                std::strcmp(reinterpret_cast<const char*>(last->ns->href), kDsNs) != 0)
                continue;
            if (!is(last, kDsNs, "Signature"))
                bad("only ds:Signature may follow the subject's results", last);
            rec.slots.push_back(std::make_unique<Slot>(
                Stage::subject_teacher, yi, si, last,
                signature_id(Stage::subject_teacher, rec.code, y.year, y.subjects[si].code)));
        }
        int k = 0;
        for (xmlNodePtr c = first_element(y.chuky); c != nullptr; c = next_element(c), ++k) {
            if (!is(c, kDsNs, "Signature")) bad("ChuKy holds only ds:Signature elements", c);
            auto stage = static_cast<Stage>(k + 1);  // the XSD allows at most 3
            rec.slots.push_back(std::make_unique<Slot>(stage, yi, std::nullopt, c,
                                                       signature_id(stage, rec.code, y.year, {})));
        }
    }
    // A signature is addressable only where the profile puts it under the Id it must carry;
    // anything else stays unregistered, so References to it do not resolve.
    for (const auto& s : rec.slots) {
        if (attr(s->node, "Id") != s->expected_id) continue;
        register_id(d, s->node);
        xmlNodePtr sp = signed_properties_of(s->node);
        if (sp != nullptr && attr(sp, "Id") == s->expected_id + "-SP") register_id(d, sp);
    }
    return rec;
}

std::optional<std::size_t> find_year(const Record& rec, std::string_view year) {
    for (std::size_t i = 0; i < rec.years.size(); ++i)
        if (rec.years[i].year == year) return i;
    return std::nullopt;
}

std::optional<std::size_t> find_subject(const Year& y, std::string_view code) {
    for (std::size_t i = 0; i < y.subjects.size(); ++i)
        if (y.subjects[i].code == code) return i;
    return std::nullopt;
}

Slot* find_slot(const Record& rec, Stage stage, std::size_t year,
                std::optional<std::size_t> subject) {
    for (const auto& s : rec.slots)
        if (s->stage == stage && s->year == year &&
            (stage != Stage::subject_teacher || s->subject == subject))
            return s.get();
    return nullptr;
}

std::vector<RefSpec> expected_references(const Record& rec, Stage stage, std::size_t year,
                                         std::optional<std::size_t> subject, xmlNodePtr signature) {
    const Year& y = rec.years[year];
    std::string ry = rec.code + "-" + y.year;
    std::vector<RefSpec> refs;
    if (stage == Stage::subject_teacher) {
        const Subject& s = y.subjects[subject.value()];
        refs.push_back({"MH-" + ry + "-" + s.code, true, false, s.node});
    } else {
        refs.push_back({"KQ-" + ry, false, false, y.kq});
    }
    refs.push_back({"HS-" + rec.code, false, false, rec.hs});
    refs.push_back({"TT-" + ry, false, false, y.tt});
    auto counter_sign = [&](Stage earlier) {
        std::string id = signature_id(earlier, rec.code, y.year, {});
        const Slot* s = find_slot(rec, earlier, year, std::nullopt);
        refs.push_back(
            {id, false, false, s != nullptr && attr(s->node, "Id") == id ? s->node : nullptr});
    };
    if (stage == Stage::principal || stage == Stage::school) counter_sign(Stage::homeroom_teacher);
    if (stage == Stage::school) counter_sign(Stage::principal);
    std::string sig_id = signature_id(
        stage, rec.code, y.year,
        subject ? std::optional<std::string_view>(y.subjects[*subject].code) : std::nullopt);
    xmlNodePtr sp = signature != nullptr ? signed_properties_of(signature) : nullptr;
    refs.push_back({sig_id + "-SP", false, true,
                    sp != nullptr && attr(sp, "Id") == sig_id + "-SP" ? sp : nullptr});
    return refs;
}

}  // namespace hbsd::dsig::detail
