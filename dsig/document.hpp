// A school record (Học bạ số) parsed once, checked against the profile (DESIGN.md, "The record
// and the signing profile"), with its XML-DSig + XAdES-BES signatures verified and new ones added.
//
// Errors are hbsd::Error only: InvalidDocument (parsing, schema, Ids, unknown year or subject),
// DocumentTooLarge, PolicyViolation (add_signature refuses a slot that is taken or not next),
// Internal (xmlsec/OpenSSL failures, a signer callback that returns garbage).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hbsd::dsig {

// In signing order; the order of the enumerators is the order of the stages.
enum class Stage { subject_teacher, homeroom_teacher, principal, school };

// "subject_teacher", "homeroom_teacher", "principal", "school": the wire names, also the
// text of xades:ClaimedRole.
std::string_view to_string(Stage stage) noexcept;
std::optional<Stage> stage_from_string(std::string_view name) noexcept;

struct Limits {
    std::size_t max_bytes = 8u << 20;  // larger documents: DocumentTooLarge before parsing
    int max_depth = 64;                // element nesting, the root counts as 1
    // Elements + comments + PIs + CDATA sections (text nodes are bounded by these). Every
    // Reference's C14N walks every node, so the node count, not the byte count, bounds the
    // work of a Verify: 8 MiB of "<!---->" would be a million nodes. A record of 12 fully
    // signed years has about 12,000.
    std::size_t max_nodes = 200000;
};

// The signer: its certificate and the private-key operation (hsm/ or, in tests, OpenSSL).
struct Signer {
    std::vector<unsigned char> certificate_der;
    // Gets the SHA-256 of the canonical SignedInfo (32 bytes) and returns the raw
    // SignatureValue: RSA PKCS#1 v1.5 (DigestInfo wrapping is the signer's job, as with
    // CKM_RSA_PKCS over a DigestInfo or CKM_SHA256_RSA_PKCS's inner step) or ECDSA r||s with
    // each half as long as the curve order. May throw hbsd::Error; it propagates unchanged.
    std::function<std::vector<unsigned char>(std::span<const unsigned char> sha256)> sign_digest;
};

struct SignatureReport {
    std::string id;                      // ds:Signature/@Id as found
    Stage role;                          // the stage of the place the signature sits in
    std::optional<std::string> subject;  // subject code, for subject_teacher
    std::string year;
    std::string signer;       // subject DN of the KeyInfo certificate (RFC 2253), "" if none
    std::string fingerprint;  // lowercase hex SHA-256 of the certificate DER, "" if none
    std::optional<std::string> signing_time;  // xades:SigningTime as written
    bool valid = false;     // profile (place, Id, references, transforms, XAdES) + crypto
    bool in_order = false;  // every earlier stage of the year is present and valid
    std::vector<std::string> problems;  // why valid / in_order are false
    std::vector<unsigned char> certificate_der;
    std::string signature_value_sha256;  // hex SHA-256 of the raw SignatureValue (audit lookup)
};

struct YearReport {
    std::string year;                                    // ThongTinNamHoc/@Nam
    std::string school, school_name, class_name, grade;  // @MaTruong, @TenTruong, @Lop, @Khoi
    // The last stage whose signatures are all present (validity is in the signature reports);
    // nullopt when not every subject carries its teacher's signature yet.
    std::optional<Stage> stage;
    std::vector<std::string> missing_subjects;  // subjects without a teacher signature
    std::vector<std::string> subjects;          // MonHoc/@Ma in document order
};

struct Report {
    enum class Verdict { valid, invalid, incomplete };

    std::string record;  // HocSinh/MaDinhDanh
    std::vector<YearReport> years;
    std::vector<SignatureReport> signatures;  // document order
    // Structural faults throw InvalidDocument from parse, and a gap in the stages shows as
    // in_order == false on the later signature, so today this is always true / empty; kept
    // for document-level findings that should not be an error.
    bool structure_ok = true;
    std::vector<std::string> problems;

    // valid: every year issued (school seal) and everything checks; invalid: any signature
    // not valid or not in order, or structure_ok false; incomplete: otherwise.
    Verdict verdict() const noexcept;
};

// Parsed once, analysed once; move-only. Not safe for concurrent use of one object (each
// request owns its Document); different Documents may be used on different threads.
class Document {
  public:
    // Safe parse (no DTD, no entities, no network, size and depth limits), profile XSD,
    // Id uniqueness and placement. Throws InvalidDocument / DocumentTooLarge.
    static Document parse(std::string_view xml, const Limits& limits = {});

    Document(Document&&) noexcept;
    Document& operator=(Document&&) noexcept;
    ~Document();

    const std::string& record() const noexcept;
    // From the structure alone; cheap, no cryptography. add_signature rebuilds these: references
    // into years() / year() do not survive it (signature() and report() pointers into
    // signatures do, report() itself is rebuilt on next call).
    const std::vector<YearReport>& years() const noexcept;
    const YearReport* year(std::string_view year) const noexcept;

    // One signature, looked up by its place; nullptr when absent. Verified on first use
    // (crypto + profile, and in_order, which verifies the earlier stages of that year) and
    // cached: nothing is verified twice. Sign's policy uses this to verify only what it needs.
    const SignatureReport* signature(Stage stage, std::string_view year,
                                     std::optional<std::string_view> subject = {}) const;

    // Everything, every signature verified (once). For Verify.
    const Report& report() const;

    // Adds the signature of `stage` for `year` (and `subject` for subject_teacher) at its place
    // and returns its report. Refuses (PolicyViolation already_signed / order) a place that
    // is taken or is not the next in ChuKy, InvalidDocument for an unknown year or subject;
    // the stage policy (earlier signatures valid) is policies::check_order's job. On any
    // error the document is unchanged. The signing time is written in UTC, whole seconds.
    SignatureReport add_signature(Stage stage, std::string_view year,
                                  std::optional<std::string_view> subject, const Signer& signer,
                                  std::chrono::system_clock::time_point signing_time);

    // UTF-8. After one add_signature: the parsed text, byte for byte, with the new signature
    // written in before its parent's end tag. Otherwise (or where that cannot be done safely,
    // see Impl::spliced) the whole tree, with an XML declaration. Only new nodes are added by
    // add_signature; what earlier signatures cover reads back to the same canonical bytes.
    std::string serialize() const;

    struct Impl;

  private:
    explicit Document(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace hbsd::dsig
