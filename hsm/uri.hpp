// RFC 7512 pkcs11: URIs through p11-kit's parser and formatter (never parsed by hand).
#pragma once

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hbsd::hsm {

// Owns one P11KitUri.
class Pkcs11Uri {
  public:
    // nullopt when `text` is not a pkcs11: URI p11-kit accepts, or names attributes p11-kit
    // does not know (such a URI could never match what the caller meant).
    static std::optional<Pkcs11Uri> parse(std::string_view text);

    Pkcs11Uri();
    Pkcs11Uri(Pkcs11Uri&& other) noexcept;
    Pkcs11Uri& operator=(Pkcs11Uri&& other) noexcept;
    Pkcs11Uri(const Pkcs11Uri&) = delete;
    Pkcs11Uri& operator=(const Pkcs11Uri&) = delete;
    ~Pkcs11Uri();

    bool matches_module(const CK_INFO& info) const;
    bool matches_token(const CK_TOKEN_INFO& info) const;
    // slot-description, slot-manufacturer and slot-id, where the URI names them.
    bool matches_slot(const CK_SLOT_INFO& info, CK_SLOT_ID id) const;
    // A private key with this CKA_ID and CKA_LABEL (empty label = no label).
    bool matches_private_key(std::span<const unsigned char> id, std::string_view label) const;
    // True when the URI names any object attribute (id, object or type).
    bool names_object() const;

    P11KitUri* raw() const noexcept { return uri_; }

  private:
    explicit Pkcs11Uri(P11KitUri* uri) noexcept : uri_(uri) {}
    P11KitUri* uri_;
};

// pkcs11:model=..;manufacturer=..;serial=..;token=..
std::string format_token_uri(const CK_TOKEN_INFO& token);
// pkcs11:slot-description=..;slot-manufacturer=..;slot-id=.. (a reader without a token)
std::string format_slot_uri(const CK_SLOT_INFO& slot, CK_SLOT_ID id);
// A CK_TOKEN_INFO whose text fields are blank: what an empty slot "holds".
CK_TOKEN_INFO blank_token_info();
// The token URI plus ;id=..;object=..;type=private
std::string format_key_uri(const CK_TOKEN_INFO& token, std::span<const unsigned char> id,
                           std::string_view label);

}  // namespace hbsd::hsm
