#include "policies/order.hpp"

#include <algorithm>
#include <string>

#include "protocol/error.hpp"

namespace hbsd::policies {
namespace {

using dsig::SignatureReport;
using dsig::Stage;
using dsig::YearReport;

std::string describe(const SignatureReport& s) {
    std::string d = "earlier signature " + s.id + " is not valid";
    if (!s.problems.empty()) d += ": " + s.problems.front();
    return d;
}

// One decision over two ways of looking signatures up: a Document (verifying lazily only
// what is asked) or a finished Report.
template <typename FindSignature>
void decide(const YearReport* yr, Stage stage, std::string_view year,
            std::optional<std::string_view> subject, FindSignature find) {
    if (yr == nullptr)
        throw Error::invalid_document("the document has no year " + std::string(year));
    const std::string y(year);
    auto later_present = [&](Stage from) {
        for (int s = static_cast<int>(from) + 1; s <= static_cast<int>(Stage::school); ++s)
            if (find(static_cast<Stage>(s), std::nullopt) != nullptr) return true;
        return false;
    };

    if (stage == Stage::subject_teacher) {
        if (!subject) throw Error::invalid_parameter("subject");
        if (std::find(yr->subjects.begin(), yr->subjects.end(), *subject) == yr->subjects.end())
            throw Error::invalid_document("year " + y + " has no subject " + std::string(*subject));
        if (find(stage, subject) != nullptr)
            throw Error::policy("already_signed", "subject " + std::string(*subject) + " of " + y +
                                                      " is already signed");
        if (later_present(stage))
            throw Error::policy("order", "year " + y +
                                             " is already signed by the homeroom teacher; "
                                             "subject signatures are closed");
        return;
    }

    if (subject) throw Error::invalid_parameter("subject");
    if (find(stage, std::nullopt) != nullptr)
        throw Error::policy("already_signed", std::string(dsig::to_string(stage)) + " of " + y +
                                                  " is already signed");
    if (later_present(stage))
        throw Error::policy("order", "a later stage of " + y + " is already signed");

    // Completeness first (order), then validity of everything present (earlier_invalid).
    if (!yr->missing_subjects.empty()) {
        std::string list;
        for (const auto& s : yr->missing_subjects) list += (list.empty() ? "" : ", ") + s;
        throw Error::policy("order", "subjects of " + y + " not yet signed: " + list);
    }
    for (int s = static_cast<int>(Stage::homeroom_teacher); s < static_cast<int>(stage); ++s)
        if (find(static_cast<Stage>(s), std::nullopt) == nullptr)
            throw Error::policy("order", std::string(dsig::to_string(static_cast<Stage>(s))) +
                                             " of " + y + " has not signed yet");
    for (const auto& code : yr->subjects) {
        const SignatureReport* t = find(Stage::subject_teacher, std::string_view(code));
        if (t == nullptr)  // cannot happen: missing_subjects was empty
            throw Error::policy("order", "subject " + code + " of " + y + " is not signed");
        if (!t->valid) throw Error::policy("earlier_invalid", describe(*t));
    }
    for (int s = static_cast<int>(Stage::homeroom_teacher); s < static_cast<int>(stage); ++s) {
        const SignatureReport* e = find(static_cast<Stage>(s), std::nullopt);
        if (e == nullptr) throw Error::policy("order", "an earlier stage of " + y + " is missing");
        if (!e->valid || !e->in_order) throw Error::policy("earlier_invalid", describe(*e));
    }
}

}  // namespace

void check_order(const dsig::Document& document, Stage stage, std::string_view year,
                 std::optional<std::string_view> subject) {
    decide(document.year(year), stage, year, subject,
           [&](Stage s, std::optional<std::string_view> subj) {
               return document.signature(s, year, subj);
           });
}

void check_order(const dsig::Report& report, Stage stage, std::string_view year,
                 std::optional<std::string_view> subject) {
    const YearReport* yr = nullptr;
    for (const auto& y : report.years)
        if (y.year == year) yr = &y;
    decide(yr, stage, year, subject,
           [&](Stage s, std::optional<std::string_view> subj) -> const SignatureReport* {
               for (const auto& sig : report.signatures)
                   if (sig.role == s && sig.year == year &&
                       (s != Stage::subject_teacher || sig.subject == subj))
                       return &sig;
               return nullptr;
           });
}

}  // namespace hbsd::policies
