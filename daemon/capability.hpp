// What a caller may do. The levels nest (sign implies read, admin implies everything), so a set
// of capabilities is stored as the closure of what the configuration grants.
#pragma once

#include <optional>
#include <string_view>

namespace hbsd::daemon {

enum class Capability : unsigned { none = 0, read = 1, sign = 2, admin = 4 };

using CapabilitySet = unsigned;

// The set one configured capability grants, with everything it implies.
constexpr CapabilitySet closure(Capability c) noexcept {
    switch (c) {
        case Capability::none:
            return 0;
        case Capability::read:
            return 1;
        case Capability::sign:
            return 1 | 2;
        case Capability::admin:
            return 1 | 2 | 4;
    }
    return 0;
}

constexpr bool allows(CapabilitySet have, Capability need) noexcept {
    return need == Capability::none || (have & static_cast<unsigned>(need)) != 0;
}

inline std::optional<Capability> capability_from_name(std::string_view s) noexcept {
    if (s == "read") return Capability::read;
    if (s == "sign") return Capability::sign;
    if (s == "admin") return Capability::admin;
    return std::nullopt;
}

inline std::string_view capability_name(Capability c) noexcept {
    switch (c) {
        case Capability::none:
            return "none";
        case Capability::read:
            return "read";
        case Capability::sign:
            return "sign";
        case Capability::admin:
            return "admin";
    }
    return "none";
}

}  // namespace hbsd::daemon
