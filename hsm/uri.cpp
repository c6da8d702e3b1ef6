#include "hsm/uri.hpp"

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "protocol/error.hpp"

namespace hbsd::hsm {

namespace {

P11KitUri* new_uri() {
    P11KitUri* uri = p11_kit_uri_new();
    if (!uri) throw Error::internal("p11_kit_uri_new: out of memory");
    return uri;
}

std::string format(P11KitUri* uri, P11KitUriType type) {
    char* text = nullptr;
    if (p11_kit_uri_format(uri, type, &text) != P11_KIT_URI_OK || !text)
        throw Error::internal("p11_kit_uri_format failed");
    std::string out(text);
    std::free(text);
    return out;
}

void set_attribute(P11KitUri* uri, CK_ATTRIBUTE_TYPE type, const void* value, CK_ULONG len) {
    CK_ATTRIBUTE attr{type, const_cast<void*>(value), len};
    if (p11_kit_uri_set_attribute(uri, &attr) != P11_KIT_URI_OK)
        throw Error::internal("p11_kit_uri_set_attribute failed");
}

void set_token(P11KitUri* uri, const CK_TOKEN_INFO& token) {
    std::memcpy(p11_kit_uri_get_token_info(uri), &token, sizeof token);
}

}  // namespace

std::optional<Pkcs11Uri> Pkcs11Uri::parse(std::string_view text) {
    // p11-kit wants a NUL-terminated string; an embedded NUL would silently cut the URI short.
    if (text.find('\0') != std::string_view::npos) return std::nullopt;
    const std::string copy(text);
    Pkcs11Uri uri(new_uri());
    if (p11_kit_uri_parse(copy.c_str(), P11_KIT_URI_FOR_ANY, uri.uri_) != P11_KIT_URI_OK)
        return std::nullopt;
    if (p11_kit_uri_any_unrecognized(uri.uri_)) return std::nullopt;
    return uri;
}

Pkcs11Uri::Pkcs11Uri() : uri_(new_uri()) {}
Pkcs11Uri::Pkcs11Uri(Pkcs11Uri&& other) noexcept : uri_(std::exchange(other.uri_, nullptr)) {}
Pkcs11Uri& Pkcs11Uri::operator=(Pkcs11Uri&& other) noexcept {
    if (this != &other) {
        if (uri_) p11_kit_uri_free(uri_);
        uri_ = std::exchange(other.uri_, nullptr);
    }
    return *this;
}
Pkcs11Uri::~Pkcs11Uri() {
    if (uri_) p11_kit_uri_free(uri_);
}

bool Pkcs11Uri::matches_module(const CK_INFO& info) const {
    return p11_kit_uri_match_module_info(uri_, &info) == 1;
}

bool Pkcs11Uri::matches_token(const CK_TOKEN_INFO& info) const {
    return p11_kit_uri_match_token_info(uri_, &info) == 1;
}

bool Pkcs11Uri::matches_slot(const CK_SLOT_INFO& info, CK_SLOT_ID id) const {
    const CK_SLOT_ID wanted = p11_kit_uri_get_slot_id(uri_);
    return p11_kit_uri_match_slot_info(uri_, &info) == 1 &&
           (wanted == static_cast<CK_SLOT_ID>(-1) || wanted == id);
}

bool Pkcs11Uri::matches_private_key(std::span<const unsigned char> id,
                                    std::string_view label) const {
    CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE attrs[] = {
        {CKA_CLASS, &klass, sizeof klass},
        {CKA_ID, const_cast<unsigned char*>(id.data()), id.size()},
        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
    };
    return p11_kit_uri_match_attributes(uri_, attrs, 3) == 1;
}

bool Pkcs11Uri::names_object() const {
    CK_ULONG n = 0;
    p11_kit_uri_get_attributes(uri_, &n);
    return n > 0;
}

std::string format_token_uri(const CK_TOKEN_INFO& token) {
    Pkcs11Uri uri;
    set_token(uri.raw(), token);
    return format(uri.raw(), P11_KIT_URI_FOR_TOKEN);
}

std::string format_slot_uri(const CK_SLOT_INFO& slot, CK_SLOT_ID id) {
    Pkcs11Uri uri;
    std::memcpy(p11_kit_uri_get_slot_info(uri.raw()), &slot, sizeof slot);
    p11_kit_uri_set_slot_id(uri.raw(), id);
    return format(uri.raw(), P11_KIT_URI_FOR_SLOT);
}

CK_TOKEN_INFO blank_token_info() {
    CK_TOKEN_INFO info;
    std::memset(&info, 0, sizeof info);
    std::memset(info.label, ' ', sizeof info.label);
    std::memset(info.manufacturerID, ' ', sizeof info.manufacturerID);
    std::memset(info.model, ' ', sizeof info.model);
    std::memset(info.serialNumber, ' ', sizeof info.serialNumber);
    return info;
}

std::string format_key_uri(const CK_TOKEN_INFO& token, std::span<const unsigned char> id,
                           std::string_view label) {
    Pkcs11Uri uri;
    set_token(uri.raw(), token);
    CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
    set_attribute(uri.raw(), CKA_CLASS, &klass, sizeof klass);
    if (!id.empty()) set_attribute(uri.raw(), CKA_ID, id.data(), id.size());
    if (!label.empty()) set_attribute(uri.raw(), CKA_LABEL, label.data(), label.size());
    return format(uri.raw(), P11_KIT_URI_FOR_OBJECT_ON_TOKEN);
}

}  // namespace hbsd::hsm
