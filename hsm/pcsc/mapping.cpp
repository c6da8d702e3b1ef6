#include "hsm/pcsc/mapping.hpp"

#include <string>

#include "protocol/error.hpp"

namespace hbsd::hsm::pcsc {

namespace {

bool is_glob(std::string_view pattern) noexcept {
    return pattern.find_first_of("*?") != std::string_view::npos;
}

// Higher is more specific; 0: no match.
int specificity(const ReaderMapping& m, std::string_view reader,
                std::optional<std::string_view> serial) noexcept {
    if (!m.token_serial.empty() && (!serial || *serial != m.token_serial)) return 0;
    if (!m.reader.empty() && !reader_matches(m.reader, reader)) return 0;
    if (!m.token_serial.empty()) return m.reader.empty() ? 3 : 4;
    if (m.reader.empty()) return 0;  // rejected by validate(); never matches anything
    return is_glob(m.reader) ? 1 : 2;
}

}  // namespace

bool reader_matches(std::string_view pattern, std::string_view name) noexcept {
    // Iterative wildcard match with one backtrack point (the last '*'): linear in practice and
    // without recursion, so a hostile pattern in a config cannot blow the stack.
    std::size_t p = 0, n = 0;
    std::size_t star = std::string_view::npos, resume = 0;
    while (n < name.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
            ++p;
            ++n;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = n;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            n = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

void validate(std::span<const ReaderMapping> mappings) {
    for (std::size_t i = 0; i < mappings.size(); ++i) {
        const auto& m = mappings[i];
        const std::string entry = "token_mapping[" + std::to_string(i) + "]";
        if (m.module.empty()) throw Error::invalid_parameter(entry + ".module");
        if (m.reader.empty() && m.token_serial.empty())
            throw Error::invalid_parameter(entry + ".reader");
    }
}

std::optional<std::string> module_for(std::span<const ReaderMapping> mappings,
                                      std::string_view reader,
                                      std::optional<std::string_view> token_serial) {
    const ReaderMapping* best = nullptr;
    int best_rank = 0;
    for (const auto& m : mappings) {
        const int rank = specificity(m, reader, token_serial);
        if (rank > best_rank) {
            best = &m;
            best_rank = rank;
        }
    }
    if (!best) return std::nullopt;
    return best->module;
}

std::optional<ReaderState> reader_for_token(std::span<const ReaderMapping> mappings,
                                            std::span<const ReaderState> readers,
                                            std::string_view module,
                                            std::optional<std::string_view> token_serial) {
    std::optional<ReaderState> empty_reader;
    for (const auto& r : readers) {
        const auto m = module_for(mappings, r.name, token_serial);
        if (!m || *m != module) continue;
        if (r.present) return r;
        if (!empty_reader) empty_reader = r;
    }
    return empty_reader;
}

}  // namespace hbsd::hsm::pcsc
