#include "dsig/document.hpp"

#include <libxml/xmlsave.h>

#include <algorithm>
#include <array>
#include <climits>

#include "dsig/parse.hpp"
#include "dsig/profile.hpp"
#include "dsig/sign.hpp"
#include "dsig/verify.hpp"
#include "dsig/xmlsec.hpp"
#include "dsig/xsd.hpp"
#include "protocol/error.hpp"

namespace hbsd::dsig {
namespace {

constexpr std::array<std::string_view, 4> kStageNames{"subject_teacher", "homeroom_teacher",
                                                      "principal", "school"};

}  // namespace

std::string_view to_string(Stage stage) noexcept {
    return kStageNames[static_cast<std::size_t>(stage)];
}

std::optional<Stage> stage_from_string(std::string_view name) noexcept {
    for (std::size_t i = 0; i < kStageNames.size(); ++i)
        if (kStageNames[i] == name) return static_cast<Stage>(i);
    return std::nullopt;
}

Report::Verdict Report::verdict() const noexcept {
    if (!structure_ok) return Verdict::invalid;
    for (const auto& s : signatures)
        if (!s.valid || !s.in_order) return Verdict::invalid;
    for (const auto& y : years)
        if (y.stage != Stage::school) return Verdict::incomplete;
    return Verdict::valid;
}

struct Document::Impl {
    detail::Record rec;
    // For serialize(): the parsed text (its length also a good first guess for the output), where
    // its MonHoc and ChuKy elements end, and the one signature add_signature inserted (a second
    // insertion turns splicing off).
    std::string source;
    std::vector<std::pair<xmlNodePtr, std::size_t>> end_tags;
    xmlNodePtr inserted = nullptr;
    bool spliceable = true;

    std::optional<std::string> spliced() const;
    std::vector<YearReport> years;
    std::optional<Report> report;

    void refresh_years() {
        years.clear();
        for (std::size_t yi = 0; yi < rec.years.size(); ++yi) {
            const detail::Year& y = rec.years[yi];
            YearReport yr;
            yr.year = y.year;
            yr.school = detail::attr(y.tt, "MaTruong").value_or("");
            yr.school_name = detail::attr(y.tt, "TenTruong").value_or("");
            yr.class_name = detail::attr(y.tt, "Lop").value_or("");
            yr.grade = detail::attr(y.tt, "Khoi").value_or("");
            for (std::size_t si = 0; si < y.subjects.size(); ++si) {
                yr.subjects.push_back(y.subjects[si].code);
                if (detail::find_slot(rec, Stage::subject_teacher, yi, si) == nullptr)
                    yr.missing_subjects.push_back(y.subjects[si].code);
            }
            if (yr.missing_subjects.empty()) {
                yr.stage = Stage::subject_teacher;
                for (Stage s : {Stage::homeroom_teacher, Stage::principal, Stage::school}) {
                    if (detail::find_slot(rec, s, yi, std::nullopt) == nullptr) break;
                    yr.stage = s;
                }
            }
            years.push_back(std::move(yr));
        }
    }

    // Profile + crypto, once per signature.
    SignatureReport& checked(detail::Slot& slot) {
        if (!slot.checked) slot.checked = detail::check_signature(rec, slot);
        return *slot.checked;
    }

    // in_order: every earlier stage of the year present and valid; verifies what it needs.
    SignatureReport& full(detail::Slot& slot) {
        SignatureReport& r = checked(slot);
        if (slot.ordered) return r;
        std::vector<std::string> why;
        if (slot.stage != Stage::subject_teacher) {
            const detail::Year& y = rec.years[slot.year];
            for (std::size_t si = 0; si < y.subjects.size(); ++si) {
                detail::Slot* t = detail::find_slot(rec, Stage::subject_teacher, slot.year, si);
                if (t == nullptr)
                    why.push_back("order: subject " + y.subjects[si].code + " is not signed");
                else if (!checked(*t).valid)
                    why.push_back("order: earlier signature " + t->checked->id + " is not valid");
            }
            for (int s = 1; s < static_cast<int>(slot.stage); ++s) {
                detail::Slot* e =
                    detail::find_slot(rec, static_cast<Stage>(s), slot.year, std::nullopt);
                if (e == nullptr)
                    why.push_back("order: no " + std::string(to_string(static_cast<Stage>(s))) +
                                  " signature before this one");
                else if (!checked(*e).valid)
                    why.push_back("order: earlier signature " + e->checked->id + " is not valid");
            }
        }
        r.in_order = why.empty();
        r.problems.insert(r.problems.end(), why.begin(), why.end());
        slot.ordered = true;
        return r;
    }
};

Document::Document(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Document::Document(Document&&) noexcept = default;
Document& Document::operator=(Document&&) noexcept = default;
Document::~Document() = default;

Document Document::parse(std::string_view xml, const Limits& limits) {
    EndTags ends{{"MonHoc", "ChuKy"}, {}};
    XmlDoc doc = parse_xml(xml, limits, ends);
    validate_schema(doc.get());
    auto impl = std::make_unique<Impl>();
    impl->rec = detail::analyse(std::move(doc));
    impl->source.assign(xml);
    impl->end_tags = std::move(ends.at);
    impl->refresh_years();
    return Document(std::move(impl));
}

const std::string& Document::record() const noexcept {
    return impl_->rec.code;
}

const std::vector<YearReport>& Document::years() const noexcept {
    return impl_->years;
}

const YearReport* Document::year(std::string_view year) const noexcept {
    for (const auto& y : impl_->years)
        if (y.year == year) return &y;
    return nullptr;
}

const SignatureReport* Document::signature(Stage stage, std::string_view year,
                                           std::optional<std::string_view> subject) const {
    const detail::Record& rec = impl_->rec;
    auto yi = detail::find_year(rec, year);
    if (!yi) return nullptr;
    std::optional<std::size_t> si;
    if (stage == Stage::subject_teacher) {
        if (!subject) return nullptr;
        si = detail::find_subject(rec.years[*yi], *subject);
        if (!si) return nullptr;
    }
    detail::Slot* slot = detail::find_slot(rec, stage, *yi, si);
    return slot != nullptr ? &impl_->full(*slot) : nullptr;
}

const Report& Document::report() const {
    if (!impl_->report) {
        Report r;
        r.record = impl_->rec.code;
        r.years = impl_->years;
        for (const auto& slot : impl_->rec.slots) r.signatures.push_back(impl_->full(*slot));
        impl_->report = std::move(r);
    }
    return *impl_->report;
}

SignatureReport Document::add_signature(Stage stage, std::string_view year,
                                        std::optional<std::string_view> subject,
                                        const Signer& signer,
                                        std::chrono::system_clock::time_point signing_time) {
    detail::Record& rec = impl_->rec;
    auto yi = detail::find_year(rec, year);
    if (!yi) throw Error::invalid_document("the document has no year " + std::string(year));
    std::optional<std::size_t> si;
    const auto chuky_count = [&] {
        int n = 0;
        for (const auto& s : rec.slots)
            if (s->year == *yi && s->stage != Stage::subject_teacher) ++n;
        return n;
    };
    if (stage == Stage::subject_teacher) {
        if (!subject) throw Error::invalid_parameter("subject");
        si = detail::find_subject(rec.years[*yi], *subject);
        if (!si)
            throw Error::invalid_document("year " + std::string(year) + " has no subject " +
                                          std::string(*subject));
        if (detail::find_slot(rec, stage, *yi, si) != nullptr)
            throw Error::policy("already_signed", "subject " + std::string(*subject) + " of " +
                                                      std::string(year) + " is already signed");
        // A teacher signature added now would change KetQua under the homeroom's digest.
        if (chuky_count() > 0)
            throw Error::policy("order", "year " + std::string(year) +
                                             " is already signed by the homeroom teacher");
    } else {
        if (subject) throw Error::invalid_parameter("subject");
        if (detail::find_slot(rec, stage, *yi, std::nullopt) != nullptr)
            throw Error::policy("already_signed", std::string(to_string(stage)) + " of " +
                                                      std::string(year) + " is already signed");
        if (chuky_count() != static_cast<int>(stage) - 1)
            throw Error::policy("order", std::string(to_string(stage)) + " of " +
                                             std::string(year) +
                                             " must follow exactly the earlier stages in ChuKy");
    }
    detail::Slot& slot = detail::sign_slot(rec, stage, *yi, si, signer, signing_time);
    if (impl_->inserted != nullptr) impl_->spliceable = false;
    impl_->inserted = slot.node;
    impl_->report.reset();
    impl_->refresh_years();
    return impl_->full(slot);
}

namespace {

struct BufferFree {
    void operator()(xmlBufferPtr b) const noexcept { xmlBufferFree(b); }
};
using Buffer = std::unique_ptr<xmlBuffer, BufferFree>;

// Whether `ns` is the xml: namespace or is declared on `n` or an ancestor of it up to `top`.
bool declared_within(xmlNsPtr ns, xmlNodePtr n, xmlNodePtr top) {
    if (ns->href != nullptr && xmlStrEqual(ns->href, XML_XML_NAMESPACE)) return true;
    for (;; n = n->parent) {
        for (xmlNsPtr d = n->nsDef; d != nullptr; d = d->next)
            if (d == ns) return true;
        if (n == top) return false;
    }
}

// Every element of `n`'s subtree has a namespace, and every namespace its elements and
// attributes use is declared inside `top`: written out on its own, `top` reads back the same
// wherever it is put. (Recursion depth: that of a ds:Signature, about 8.)
bool self_contained(xmlNodePtr n, xmlNodePtr top) {
    if (n->ns == nullptr || !declared_within(n->ns, n, top)) return false;
    for (xmlAttrPtr a = n->properties; a != nullptr; a = a->next)
        if (a->ns != nullptr && !declared_within(a->ns, n, top)) return false;
    for (xmlNodePtr c = n->children; c != nullptr; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !self_contained(c, top)) return false;
    return true;
}

}  // namespace

// The parsed text with the new signature written in just before its parent's end tag: the
// bytes the earlier signers sent stay as they were (declaration, quoting, character
// references), and only the new subtree is serialised. It reads back as the tree that was
// signed because the tree differs from the parsed text by that one insertion, made as the
// parent's last child, and the subtree brings its own namespace declarations. Anything else
// (an offset that is not the parent's end tag, a subtree that needs namespaces from outside,
// a second insertion) answers nullopt and the whole tree is written out instead.
std::optional<std::string> Document::Impl::spliced() const {
    if (inserted == nullptr || !spliceable || source.empty()) return std::nullopt;
    xmlNodePtr parent = inserted->parent;
    if (parent == nullptr || parent->last != inserted) return std::nullopt;
    std::size_t end = 0;
    for (const auto& [node, offset] : end_tags)
        if (node == parent) end = offset;
    if (end < 4 || end > source.size() || source[end - 1] != '>') return std::nullopt;
    const std::size_t lt = source.rfind('<', end - 1);
    if (lt == std::string::npos) return std::nullopt;
    std::string qname;
    if (parent->ns != nullptr && parent->ns->prefix != nullptr)
        qname.append(reinterpret_cast<const char*>(parent->ns->prefix)).push_back(':');
    qname.append(reinterpret_cast<const char*>(parent->name));
    const auto blank = [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; ++i)
            if (source[i] != ' ' && source[i] != '\t' && source[i] != '\n' && source[i] != '\r')
                return false;
        return true;
    };
    // "</qname S?>": the new signature goes in front of it. "<qname .../>" (no attribute
    // value holds a '<', so lt is its start): it becomes "<qname ...>", signature, "</qname>".
    const bool empty_tag = source[lt + 1] != '/';
    if (empty_tag) {
        if (parent->children != inserted || source[end - 2] != '/' ||
            source.compare(lt + 1, qname.size(), qname) != 0)
            return std::nullopt;
        const char after = source[lt + 1 + qname.size()];
        if (after != '/' && !blank(lt + 1 + qname.size(), lt + 2 + qname.size()))
            return std::nullopt;
    } else if (source.compare(lt + 2, qname.size(), qname) != 0 ||
               !blank(lt + 2 + qname.size(), end - 1)) {
        return std::nullopt;
    }
    if (!self_contained(inserted, inserted)) return std::nullopt;

    Buffer buf(xmlBufferCreateSize(16 * 1024));
    if (!buf) throw Error::internal("serialising the signature failed: out of memory");
    xmlSaveCtxtPtr save = xmlSaveToBuffer(buf.get(), "UTF-8", 0);
    if (save == nullptr) throw Error::internal("serialising the signature failed");
    const long rc = xmlSaveTree(save, inserted);
    if (xmlSaveClose(save) < 0 || rc < 0) throw Error::internal("serialising the signature failed");
    const std::string_view tree(reinterpret_cast<const char*>(xmlBufferContent(buf.get())),
                                static_cast<std::size_t>(xmlBufferLength(buf.get())));
    std::string out;
    out.reserve(source.size() + tree.size() + qname.size() + 3);
    if (empty_tag)
        out.append(source, 0, end - 2)
            .append(">")
            .append(tree)
            .append("</")
            .append(qname)
            .append(">");
    else
        out.append(source, 0, lt).append(tree);
    out.append(source, empty_tag ? end : lt, std::string::npos);
    return out;
}

std::string Document::serialize() const {
    if (auto out = impl_->spliced()) return std::move(*out);
    // xmlSaveToBuffer into a buffer sized for the output up front: xmlDocDumpMemoryEnc grows
    // its buffer from 4 KB and passes everything through a UTF-8 to UTF-8 converter, a third
    // more time for a fully signed record. Same bytes (declaration, encoding, escaping).
    const std::size_t guess = impl_->source.size() + 16 * 1024;  // + a signature or two
    Buffer buf(xmlBufferCreateSize(std::min<std::size_t>(guess, INT_MAX / 2)));
    if (!buf) throw Error::internal("serialising the document failed: out of memory");
    xmlSaveCtxtPtr save = xmlSaveToBuffer(buf.get(), "UTF-8", 0);
    if (save == nullptr) throw Error::internal("serialising the document failed");
    const long rc = xmlSaveDoc(save, impl_->rec.doc.get());
    if (xmlSaveClose(save) < 0 || rc < 0) throw Error::internal("serialising the document failed");
    return std::string(reinterpret_cast<const char*>(xmlBufferContent(buf.get())),
                       static_cast<std::size_t>(xmlBufferLength(buf.get())));
}

}  // namespace hbsd::dsig
