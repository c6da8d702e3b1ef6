// Which PKCS#11 module drives the token in a PC/SC reader: the `[[token_mapping]]` entries of
// hbsd.toml, as plain data so that config loading, ListTokens and the tests share one rule.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "hsm/pcsc/watcher.hpp"

namespace hbsd::hsm::pcsc {

struct ReaderMapping {
    // The reader name, exact or a glob where '*' matches any run of characters and '?' one
    // character (nothing else is special). pcsc-lite appends " 00 00"-style indexes that
    // depend on plug order, so "Gemalto USB Shell Token V2*" is the usual form. Empty: any.
    std::string reader;
    // The PKCS#11 token serial (CK_TOKEN_INFO.serialNumber, trailing blanks stripped). Empty:
    // any. A serial names one physical token wherever it is plugged in.
    std::string token_serial;
    // ModuleConfig::name of the module that drives it.
    std::string module;
};

// True when `name` matches the exact-or-glob `pattern` (see ReaderMapping::reader).
bool reader_matches(std::string_view pattern, std::string_view name) noexcept;

// Throws hbsd::Error (InvalidParameter naming the entry, e.g. "token_mapping[2].module") for
// an entry without a module, or with neither a reader nor a token serial.
void validate(std::span<const ReaderMapping> mappings);

// The module for the token in `reader`, `token_serial` being its serial once a module has
// read it (unknown: nullopt). The most specific matching entry wins: reader and serial, then
// serial alone, then an exact reader name, then a reader glob; among equals, the first in
// configuration order. Entries naming a serial never match while the serial is unknown.
std::optional<std::string> module_for(std::span<const ReaderMapping> mappings,
                                      std::string_view reader,
                                      std::optional<std::string_view> token_serial = {});

// The reader a token of `module` (with `token_serial`, when known) sits in, for a module that
// does not know its own reader (SoftHSM2 behind an emulated card, a vendor module that names
// slots its own way): among `readers` (Watcher::readers()) whose mapping names `module`, the
// first one holding a card, else the first one at all (the token is then not present); nullopt
// when no reader maps to the module, i.e. the token is not tied to a PC/SC reader.
std::optional<ReaderState> reader_for_token(std::span<const ReaderMapping> mappings,
                                            std::span<const ReaderState> readers,
                                            std::string_view module,
                                            std::optional<std::string_view> token_serial = {});

}  // namespace hbsd::hsm::pcsc
