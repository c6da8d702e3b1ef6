// The audit log: append-only and hash-chained (DESIGN.md, "Storage, audit, nothing lost").
//
// Chain definition (what VerifyAuditLog and any outside checker recompute):
//
//   entry_hash(n) = lowercase_hex( SHA-256( prev_hash(n) || canonical(n) ) )
//   prev_hash(1)  = "0000000000000000000000000000000000000000000000000000000000000000" (64 '0')
//   prev_hash(n)  = entry_hash(n-1)
//
// where prev_hash(n) enters the digest as its 64 ASCII hex characters (not 32 raw bytes), and
// canonical(n) is the compact JSON text (Boost.JSON serialize: no whitespace, UTF-8 as is,
// only '"', '\\' and control characters escaped) of one object whose keys are exactly, in
// this order:
//
//   seq (integer), time (string), uid (integer), method (string), outcome (string),
//   record, role, fingerprint, document_before, document_after, detail
//   (each a string, or null when absent)
//
// i.e. every field of the contract's AuditEntry except the two hashes. seq is inside the
// hashed text, so entries cannot be reordered or renumbered without breaking the chain.
//
// The log never holds PINs, keys or document bodies: documents appear only as hashes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

namespace hbsd::store {

enum class Outcome { ok, denied, failed };
std::string_view to_string(Outcome outcome) noexcept;
std::optional<Outcome> outcome_from_string(std::string_view s) noexcept;

inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// What a caller supplies; the store adds seq, time (if absent) and the hashes.
struct AuditInput {
    std::int64_t uid = 0;
    std::string method;
    Outcome outcome = Outcome::ok;
    std::optional<std::string> record;
    std::optional<std::string> role;
    std::optional<std::string> fingerprint;
    std::optional<std::string> document_before;  // hex SHA-256, never the document
    std::optional<std::string> document_after;   // hex SHA-256, never the document
    std::optional<std::string> detail;
    std::optional<std::string> time;  // RFC 3339 UTC; default: now
};

// The contract's AuditEntry.
struct AuditEntry {
    std::int64_t seq = 0;
    std::string time;
    std::int64_t uid = 0;
    std::string method;
    Outcome outcome = Outcome::ok;
    std::optional<std::string> record;
    std::optional<std::string> role;
    std::optional<std::string> fingerprint;
    std::optional<std::string> document_before;
    std::optional<std::string> document_after;
    std::optional<std::string> detail;
    std::string prev_hash;
    std::string entry_hash;

    boost::json::object to_json() const;
};

struct AuditVerification {
    bool ok = true;
    std::int64_t entries = 0;
    std::string head;  // entry_hash of the last entry; the genesis hash for an empty log
    std::optional<std::int64_t> first_bad;  // first seq whose link, hash or numbering is wrong

    // The contract's VerifyAuditLog reply: {ok, entries, head, first_bad}.
    boost::json::object to_json() const;
};

// canonical(n) as defined above.
std::string canonical_entry(const AuditEntry& entry);
// entry_hash(n) from entry.prev_hash and canonical(entry).
std::string compute_entry_hash(const AuditEntry& entry);

}  // namespace hbsd::store
