// libFuzzer target for the document checks: whatever the bytes, Document::parse either
// throws hbsd::Error or yields a document whose report, serialisation and order decisions
// work, and whose serialisation parses again to the same report.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dsig/document.hpp"
#include "policies/order.hpp"
#include "protocol/error.hpp"

using namespace hbsd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view xml(reinterpret_cast<const char*>(data), size);
    dsig::Limits limits;
    limits.max_bytes = 1u << 20;  // keep iterations fast; the limit itself is unit-tested
    try {
        auto doc = dsig::Document::parse(xml, limits);
        const dsig::Report& r = doc.report();
        (void)r.verdict();
        for (const auto& y : doc.years()) {
            for (auto stage : {dsig::Stage::subject_teacher, dsig::Stage::homeroom_teacher,
                               dsig::Stage::principal, dsig::Stage::school}) {
                std::optional<std::string_view> subject;
                if (stage == dsig::Stage::subject_teacher && !y.subjects.empty())
                    subject = y.subjects.front();
                try {
                    policies::check_order(doc, stage, y.year, subject);
                } catch (const Error&) {
                }
            }
        }
        std::string out = doc.serialize();
        auto again = dsig::Document::parse(out);
        const dsig::Report& r2 = again.report();
        if (r2.signatures.size() != r.signatures.size()) __builtin_trap();
        for (std::size_t i = 0; i < r.signatures.size(); ++i)
            if (r2.signatures[i].valid != r.signatures[i].valid) __builtin_trap();
    } catch (const Error&) {
    }
    return 0;
}
