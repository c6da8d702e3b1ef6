// Conversions shared by the handlers: hsm/ and dsig/ values to the contract's record types.
#pragma once

#include "daemon/services.hpp"
#include "dsig/document.hpp"
#include "hsm/token_manager.hpp"
#include "protocol/types.hpp"

#include <chrono>
#include <ctime>
#include <string>

namespace hbsd::daemon {

// RFC 3339, UTC, whole seconds: 2026-11-30T01:02:03Z.
std::string rfc3339(std::chrono::system_clock::time_point t);

protocol::Token to_wire(const hsm::TokenInfo& t);
protocol::Key to_wire(const hsm::KeyInfo& k);

// A signature's report with the daemon's own judgements added: trust (chain to the configured
// anchors at `trust_time`) and registration (no registry yet: always false, said in problems).
protocol::SignatureInfo to_wire(const dsig::SignatureReport& s,
                                const std::shared_ptr<const policies::TrustStore>& trust,
                                std::chrono::system_clock::time_point trust_time);

inline constexpr std::string_view kNoRegistry = "registry not configured";

// With a store and registry_checks on: trusted and registered as the registry judges them at `at`
// (Registry::assess), problems = dsig's own plus the registry's. Without one, `w` keeps to_wire's
// placeholder.
void judge_registry(protocol::SignatureInfo& w, const dsig::SignatureReport& s,
                    const dsig::YearReport* year, std::string_view record, const Services& services,
                    const Snapshot& in_force, std::chrono::system_clock::time_point at);

// Parses rfc3339's output (and any "YYYY-MM-DDTHH:MM:SSZ"); nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace hbsd::daemon
