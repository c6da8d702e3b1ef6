#include "dsig/document.hpp"

#include <libxml/xmlsave.h>

#include <array>

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
    std::size_t parsed_size = 0;  // the input's length: a good first guess for serialize()
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
    XmlDoc doc = parse_xml(xml, limits);
    validate_schema(doc.get());
    auto impl = std::make_unique<Impl>();
    impl->rec = detail::analyse(std::move(doc));
    impl->parsed_size = xml.size();
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
    impl_->report.reset();
    impl_->refresh_years();
    return impl_->full(slot);
}

std::string Document::serialize() const {
    // xmlSaveToBuffer into a buffer sized for the output up front: xmlDocDumpMemoryEnc grows
    // its buffer from 4 KB and passes everything through a UTF-8 to UTF-8 converter, a third
    // more time for a fully signed record. Same bytes (declaration, encoding, escaping).
    struct BufferFree {
        void operator()(xmlBufferPtr b) const noexcept { xmlBufferFree(b); }
    };
    const std::size_t guess = impl_->parsed_size + 16 * 1024;  // + a signature or two
    std::unique_ptr<xmlBuffer, BufferFree> buf(
        xmlBufferCreateSize(std::min<std::size_t>(guess, INT_MAX / 2)));
    if (!buf) throw Error::internal("serialising the document failed: out of memory");
    xmlSaveCtxtPtr save = xmlSaveToBuffer(buf.get(), "UTF-8", 0);
    if (save == nullptr) throw Error::internal("serialising the document failed");
    const long rc = xmlSaveDoc(save, impl_->rec.doc.get());
    if (xmlSaveClose(save) < 0 || rc < 0) throw Error::internal("serialising the document failed");
    return std::string(reinterpret_cast<const char*>(xmlBufferContent(buf.get())),
                       static_cast<std::size_t>(xmlBufferLength(buf.get())));
}

}  // namespace hbsd::dsig
