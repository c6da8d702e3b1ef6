// Shared by the dsig and policies tests: the fixture, the test PKI (tests/support/make-test-pki,
// made once per build directory by the ctest fixture, or on first use), software signers over
// the PKI's keys (OpenSSL, real keys), and small document surgery helpers.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsig/document.hpp"
#include "protocol/error.hpp"
#include "tests/support/temp_dir.hpp"

namespace hbsd::test {

extern const std::vector<std::string> kSubjects;  // the fixture's 12 subject codes, in order
inline constexpr char kRecord[] = "94000123-2024-0001";
inline constexpr char kYear[] = "2024-2025";
inline constexpr char kYear2[] = "2025-2026";

const std::string& fixture();  // the unsigned record

std::filesystem::path pki_dir();  // made on first use if the ctest fixture did not
// A signer over <name>.key/<name>.pem of the test PKI (gvbm-TOAN, gvcn, ht, truong, extra-p384).
dsig::Signer signer(const std::string& name);
// The signer of a stage per people.tsv.
dsig::Signer stage_signer(dsig::Stage stage, const std::string& subject = {});

std::chrono::system_clock::time_point fixed_time();  // 2025-05-30T08:00:00Z

// Signs every stage of `year` in order (check_order before each), returns the serialised
// document. stop_before: leave that stage (and later ones) unsigned; skip_subject: leave it.
std::string sign_year(const std::string& xml, const std::string& year,
                      std::optional<dsig::Stage> stop_before = std::nullopt,
                      const std::string& skip_subject = {});
// The same, one stage per request as hbsd signs: each on a fresh parse of the last output.
std::string sign_year_by_requests(const std::string& xml, const std::string& year);
// The fixture as a signer's tool might write it, in ways a serialiser would not: single
// quotes, lower-case encoding name, CRLF line ends, a character reference.
std::string hand_written();
// The fixture signed through all four stages (cached).
const std::string& fully_signed();
// `xml` with a copy of the fixture's year, as year 2025-2026 (new Ids, class 7A1), appended.
std::string with_second_year(const std::string& xml);

// Text surgery for negative tests.
std::string replace_once(std::string s, std::string_view from, std::string_view to);
// The <ds:Signature ...Id="id"...>...</ds:Signature> element text.
std::string signature_text(const std::string& xml, const std::string& id);

std::string sig_id(dsig::Stage stage, const std::string& year = kYear,
                   const std::string& subject = {});

// The reason/param of an hbsd::Error, for assertions.
std::string param(const Error& e, const char* key);

}  // namespace hbsd::test
