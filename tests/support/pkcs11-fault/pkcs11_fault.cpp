// A PKCS#11 module for tests that forwards every call to a real module and injects faults
// on command, so that error paths a software token never takes (locked PINs, retry counters,
// removed devices, slow or failing operations) can be tested against real code.
//
// Environment:
//   HBSD_FAULT_REAL_MODULE  path of the real module (required)
//   HBSD_FAULT_CONTROL      control file, re-read on every call (optional; missing = no faults)
//   HBSD_FAULT_LOG          file that gets one line per call: "<function> <rv> <in-flight>"
//                           (C_SignInit adds " mechanism=0x..")
//
// Control file, one directive per line ('#' starts a comment). Function names are matched
// without case, "C_" prefix or underscores, so "sign", "C_Sign" and "open_session" all work:
//   <function>=<rv>            return <rv> (CKR_* name or number) without calling the module
//                              (C_Sign: after letting the module end the operation)
//   <function>_after=<rv>      call the module, then return <rv> instead of its result
//   <function>_delay_ms=<n>    sleep n ms before calling the module
//   token_flags=<f>[,<f>...]   OR flags into C_GetTokenInfo's answer: pin_count_low,
//                              pin_final_try, pin_locked, pin_to_be_changed
//   token_present=0            slots report no token: C_GetSlotInfo clears CKF_TOKEN_PRESENT,
//                              C_GetSlotList(TRUE) lists none, C_GetTokenInfo and C_OpenSession
//                              return CKR_TOKEN_NOT_PRESENT, and C_SignInit / C_Sign on a
//                              session of the slot return CKR_DEVICE_REMOVED, as a card reader's
//                              module answers once the card is out
//   token_absent=<label>       the same for the slot holding the token labelled <label> only
//                              (repeatable)
//   restart_needed=<rv>,<n>    a crashed or restarted HSM: every call but C_Initialize,
//                              C_Finalize and C_GetFunctionList returns <rv> (e.g.
//                              CKR_DEVICE_ERROR, CKR_CRYPTOKI_NOT_INITIALIZED) until the
//                              application calls C_Initialize again (after C_Finalize); <n> > 0
//                              numbers the crash, so the directive may stay in the file: a
//                              new crash needs a new number
// The module only pretends: a token that "comes back" keeps its objects and, unless the
// application logged out, its login state.
#include <p11-kit/pkcs11.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

// Every member of CK_FUNCTION_LIST after `version`, in order.
// One X(name) a line, as CK_FUNCTION_LIST orders them; kept out of clang-format, which
// otherwise folds the list into a staircase.
// clang-format off
#define FAULT_FUNCTIONS(X) \
    X(C_Initialize) \
    X(C_Finalize) \
    X(C_GetInfo) \
    X(C_GetFunctionList) \
    X(C_GetSlotList) \
    X(C_GetSlotInfo) \
    X(C_GetTokenInfo) \
    X(C_GetMechanismList) \
    X(C_GetMechanismInfo) \
    X(C_InitToken) \
    X(C_InitPIN) \
    X(C_SetPIN) \
    X(C_OpenSession) \
    X(C_CloseSession) \
    X(C_CloseAllSessions) \
    X(C_GetSessionInfo) \
    X(C_GetOperationState) \
    X(C_SetOperationState) \
    X(C_Login) \
    X(C_Logout) \
    X(C_CreateObject) \
    X(C_CopyObject) \
    X(C_DestroyObject) \
    X(C_GetObjectSize) \
    X(C_GetAttributeValue) \
    X(C_SetAttributeValue) \
    X(C_FindObjectsInit) \
    X(C_FindObjects) \
    X(C_FindObjectsFinal) \
    X(C_EncryptInit) \
    X(C_Encrypt) \
    X(C_EncryptUpdate) \
    X(C_EncryptFinal) \
    X(C_DecryptInit) \
    X(C_Decrypt) \
    X(C_DecryptUpdate) \
    X(C_DecryptFinal) \
    X(C_DigestInit) \
    X(C_Digest) \
    X(C_DigestUpdate) \
    X(C_DigestKey) \
    X(C_DigestFinal) \
    X(C_SignInit) \
    X(C_Sign) \
    X(C_SignUpdate) \
    X(C_SignFinal) \
    X(C_SignRecoverInit) \
    X(C_SignRecover) \
    X(C_VerifyInit) \
    X(C_Verify) \
    X(C_VerifyUpdate) \
    X(C_VerifyFinal) \
    X(C_VerifyRecoverInit) \
    X(C_VerifyRecover) \
    X(C_DigestEncryptUpdate) \
    X(C_DecryptDigestUpdate) \
    X(C_SignEncryptUpdate) \
    X(C_DecryptVerifyUpdate) \
    X(C_GenerateKey) \
    X(C_GenerateKeyPair) \
    X(C_WrapKey) \
    X(C_UnwrapKey) \
    X(C_DeriveKey) \
    X(C_SeedRandom) \
    X(C_GenerateRandom) \
    X(C_GetFunctionStatus) \
    X(C_CancelFunction) \
    X(C_WaitForSlotEvent)
// clang-format on

enum Fn : std::size_t {
#define FAULT_ENUM(name) fn_##name,
    FAULT_FUNCTIONS(FAULT_ENUM)
#undef FAULT_ENUM
        fn_count
};

constexpr std::array<const char*, fn_count> fn_names = {
#define FAULT_NAME(name) #name,
    FAULT_FUNCTIONS(FAULT_NAME)
#undef FAULT_NAME
};

struct Rv {
    const char* name;
    CK_RV value;
};
#define FAULT_RV(name) \
    Rv {               \
#name, name    \
    }
constexpr Rv rv_names[] = {
    FAULT_RV(CKR_OK),
    FAULT_RV(CKR_HOST_MEMORY),
    FAULT_RV(CKR_SLOT_ID_INVALID),
    FAULT_RV(CKR_GENERAL_ERROR),
    FAULT_RV(CKR_FUNCTION_FAILED),
    FAULT_RV(CKR_ARGUMENTS_BAD),
    FAULT_RV(CKR_ATTRIBUTE_TYPE_INVALID),
    FAULT_RV(CKR_DATA_LEN_RANGE),
    FAULT_RV(CKR_DEVICE_ERROR),
    FAULT_RV(CKR_DEVICE_MEMORY),
    FAULT_RV(CKR_DEVICE_REMOVED),
    FAULT_RV(CKR_FUNCTION_CANCELED),
    FAULT_RV(CKR_FUNCTION_NOT_SUPPORTED),
    FAULT_RV(CKR_KEY_HANDLE_INVALID),
    FAULT_RV(CKR_KEY_TYPE_INCONSISTENT),
    FAULT_RV(CKR_MECHANISM_INVALID),
    FAULT_RV(CKR_MECHANISM_PARAM_INVALID),
    FAULT_RV(CKR_OBJECT_HANDLE_INVALID),
    FAULT_RV(CKR_OPERATION_ACTIVE),
    FAULT_RV(CKR_OPERATION_NOT_INITIALIZED),
    FAULT_RV(CKR_PIN_INCORRECT),
    FAULT_RV(CKR_PIN_INVALID),
    FAULT_RV(CKR_PIN_LEN_RANGE),
    FAULT_RV(CKR_PIN_EXPIRED),
    FAULT_RV(CKR_PIN_LOCKED),
    FAULT_RV(CKR_SESSION_CLOSED),
    FAULT_RV(CKR_SESSION_COUNT),
    FAULT_RV(CKR_SESSION_HANDLE_INVALID),
    FAULT_RV(CKR_TOKEN_NOT_PRESENT),
    FAULT_RV(CKR_TOKEN_NOT_RECOGNIZED),
    FAULT_RV(CKR_USER_ALREADY_LOGGED_IN),
    FAULT_RV(CKR_USER_NOT_LOGGED_IN),
    FAULT_RV(CKR_USER_PIN_NOT_INITIALIZED),
    FAULT_RV(CKR_USER_TYPE_INVALID),
    FAULT_RV(CKR_BUFFER_TOO_SMALL),
    FAULT_RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    FAULT_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
};
#undef FAULT_RV

// "C_OpenSession", "OpenSession", "open_session" -> "opensession".
std::string normalise(std::string_view name) {
    if (name.size() > 2 && (name[0] == 'C' || name[0] == 'c') && name[1] == '_')
        name.remove_prefix(2);
    std::string out;
    for (char c : name)
        if (c != '_') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::optional<CK_RV> parse_rv(std::string_view text) {
    for (const auto& r : rv_names)
        if (text == r.name) return r.value;
    std::string s(text);
    char* end = nullptr;
    unsigned long v = std::strtoul(s.c_str(), &end, 0);
    if (!s.empty() && end && *end == '\0') return v;
    return std::nullopt;
}

struct Control {
    std::array<std::optional<CK_RV>, fn_count> fail{};
    std::array<std::optional<CK_RV>, fn_count> fail_after{};
    std::array<unsigned, fn_count> delay_ms{};
    CK_FLAGS token_flags = 0;
    bool token_absent = false;
    std::vector<std::string> absent_labels;
    std::optional<CK_RV> crash_rv;
    long crash_id = 0;
};

// The last crash number (restart_needed) the application recovered from by re-initialising.
std::atomic<long> recovered_crash{0};

std::optional<std::size_t> find_function(std::string_view name) {
    const std::string want = normalise(name);
    for (std::size_t i = 0; i < fn_count; ++i)
        if (normalise(fn_names[i]) == want) return i;
    return std::nullopt;
}

void complain(const std::string& line) {
    std::fprintf(stderr, "pkcs11-fault: ignoring control line \"%s\"\n", line.c_str());
}

Control read_control() {
    Control c;
    const char* path = std::getenv("HBSD_FAULT_CONTROL");
    if (!path) return c;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
            line.pop_back();
        if (line.empty()) continue;
        const auto eq = line.find('=');
        if (eq == std::string::npos) {
            complain(line);
            continue;
        }
        std::string key = line.substr(0, eq);
        const std::string value = line.substr(eq + 1);
        if (key == "token_flags") {
            std::size_t pos = 0;
            while (pos <= value.size()) {
                const auto comma = value.find(',', pos);
                const std::string flag = value.substr(pos, comma - pos);
                if (flag == "pin_count_low")
                    c.token_flags |= CKF_USER_PIN_COUNT_LOW;
                else if (flag == "pin_final_try")
                    c.token_flags |= CKF_USER_PIN_FINAL_TRY;
                else if (flag == "pin_locked")
                    c.token_flags |= CKF_USER_PIN_LOCKED;
                else if (flag == "pin_to_be_changed")
                    c.token_flags |= CKF_USER_PIN_TO_BE_CHANGED;
                else if (!flag.empty())
                    complain(line);
                if (comma == std::string::npos) break;
                pos = comma + 1;
            }
            continue;
        }
        if (key == "token_present") {
            c.token_absent = value == "0";
            continue;
        }
        if (key == "token_absent") {
            c.absent_labels.push_back(value);
            continue;
        }
        if (key == "restart_needed") {
            const auto comma = value.find(',');
            auto rv = parse_rv(value.substr(0, comma));
            const long id = comma == std::string::npos
                                ? 0
                                : std::strtol(value.c_str() + comma + 1, nullptr, 10);
            if (rv && id > 0) {
                c.crash_rv = rv;
                c.crash_id = id;
                continue;
            }
        }
        auto strip = [&key](std::string_view suffix) {
            if (key.size() > suffix.size() &&
                key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
                key.erase(key.size() - suffix.size());
                return true;
            }
            return false;
        };
        if (strip("_delay_ms")) {
            if (auto fn = find_function(key)) {
                c.delay_ms[*fn] = static_cast<unsigned>(std::strtoul(value.c_str(), nullptr, 10));
                continue;
            }
        } else if (strip("_after")) {
            auto fn = find_function(key);
            auto rv = parse_rv(value);
            if (fn && rv) {
                c.fail_after[*fn] = *rv;
                continue;
            }
        } else {
            auto fn = find_function(key);
            auto rv = parse_rv(value);
            if (fn && rv) {
                c.fail[*fn] = *rv;
                continue;
            }
        }
        complain(line);
    }
    return c;
}

void* real_handle = nullptr;
CK_FUNCTION_LIST* real = nullptr;
CK_FUNCTION_LIST wrapped{};
std::once_flag load_once;
std::array<std::atomic<int>, fn_count> in_flight{};

// Whether `slot` is to look empty. Asks the real module for the label, never the wrapper.
bool slot_absent(const Control& c, CK_SLOT_ID slot) {
    if (c.token_absent) return true;
    if (c.absent_labels.empty()) return false;
    CK_TOKEN_INFO info{};
    if (real->C_GetTokenInfo(slot, &info) != CKR_OK) return false;
    std::string label(reinterpret_cast<const char*>(info.label), sizeof info.label);
    while (!label.empty() && label.back() == ' ') label.pop_back();
    for (const auto& l : c.absent_labels)
        if (l == label) return true;
    return false;
}

void log_call(std::size_t fn, CK_RV rv, int flight, const std::string& extra = {}) {
    const char* path = std::getenv("HBSD_FAULT_LOG");
    if (!path) return;
    char line[192];
    const int n = std::snprintf(line, sizeof line, "%s 0x%lx %d%s%s\n", fn_names[fn], rv, flight,
                                extra.empty() ? "" : " ", extra.c_str());
    const int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    // One write() per line so that lines of concurrent calls do not interleave.
    [[maybe_unused]] auto written = ::write(fd, line, static_cast<std::size_t>(n));
    ::close(fd);
}

// Runs one call: faults first, then the real function, then the optional post-processing.
template <typename Call, typename Post>
CK_RV run(std::size_t fn, Call&& call, Post&& post, const std::string& extra = {}) {
    const Control c = read_control();
    // Counted from before the delay, so that a slowed-down call shows as in flight.
    const int flight = ++in_flight[fn];
    if (c.delay_ms[fn]) std::this_thread::sleep_for(std::chrono::milliseconds(c.delay_ms[fn]));
    CK_RV rv;
    const bool lifecycle =
        fn == fn_C_Initialize || fn == fn_C_Finalize || fn == fn_C_GetFunctionList;
    if (c.crash_rv && c.crash_id != recovered_crash && !lifecycle) {
        rv = *c.crash_rv;
    } else if (c.fail[fn]) {
        rv = *c.fail[fn];
    } else {
        // A call may look at the control file's directives (read once per call, here).
        if constexpr (std::is_invocable_v<Call, const Control&>)
            rv = call(c);
        else
            rv = call();
        if (rv == CKR_OK) rv = post(c);
        if (c.fail_after[fn]) rv = *c.fail_after[fn];
        if (fn == fn_C_Initialize && rv == CKR_OK && c.crash_rv) recovered_crash = c.crash_id;
    }
    --in_flight[fn];
    log_call(fn, rv, flight, extra);
    return rv;
}

template <typename F>
struct Forward;
template <typename... A>
struct Forward<CK_RV (*)(A...)> {
    template <std::size_t I, auto Member>
    static CK_RV call(A... a) {
        return run(
            I, [&] { return (real->*Member)(a...); }, [](const Control&) { return CKR_OK; });
    }
};

CK_RV fault_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID* list, CK_ULONG* count) {
    return run(
        fn_C_GetSlotList,
        [&] {
            const Control c = read_control();
            if (!token_present || (!c.token_absent && c.absent_labels.empty()))
                return real->C_GetSlotList(token_present, list, count);
            if (!count) return CKR_ARGUMENTS_BAD;
            CK_ULONG n = 0;
            if (CK_RV rv = real->C_GetSlotList(CK_TRUE, nullptr, &n); rv != CKR_OK) return rv;
            std::vector<CK_SLOT_ID> all(n);
            if (CK_RV rv = real->C_GetSlotList(CK_TRUE, all.data(), &n); rv != CKR_OK) return rv;
            all.resize(n);
            std::erase_if(all, [&](CK_SLOT_ID s) { return slot_absent(c, s); });
            if (list && *count < all.size()) {
                *count = all.size();
                return CKR_BUFFER_TOO_SMALL;
            }
            if (list) std::copy(all.begin(), all.end(), list);
            *count = all.size();
            return CKR_OK;
        },
        [](const Control&) { return CKR_OK; });
}

CK_RV fault_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO* info) {
    return run(
        fn_C_GetSlotInfo, [&] { return real->C_GetSlotInfo(slot, info); },
        [&](const Control& c) {
            if (slot_absent(c, slot)) info->flags &= ~CKF_TOKEN_PRESENT;
            return CKR_OK;
        });
}

CK_RV fault_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO* info) {
    return run(
        fn_C_GetTokenInfo, [&] { return real->C_GetTokenInfo(slot, info); },
        [&](const Control& c) {
            if (slot_absent(c, slot)) return CKR_TOKEN_NOT_PRESENT;
            info->flags |= c.token_flags;
            return CKR_OK;
        });
}

CK_RV fault_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void* app, CK_NOTIFY notify,
                        CK_SESSION_HANDLE* session) {
    return run(
        fn_C_OpenSession,
        [&] {
            if (slot_absent(read_control(), slot)) return CKR_TOKEN_NOT_PRESENT;
            return real->C_OpenSession(slot, flags, app, notify, session);
        },
        [](const Control&) { return CKR_OK; });
}

// Whether `session` belongs to a slot that is to look empty.
bool session_absent(const Control& c, CK_SESSION_HANDLE session) {
    if (c.token_absent) return true;
    if (c.absent_labels.empty()) return false;
    CK_SESSION_INFO info{};
    return real->C_GetSessionInfo(session, &info) == CKR_OK && slot_absent(c, info.slotID);
}

// A failing C_Sign ends the signing operation on a real token (PKCS#11 5.2: every result but
// CKR_BUFFER_TOO_SMALL and a length query does). So an injected fault first lets the real
// module finish the operation, else the session would answer CKR_OPERATION_ACTIVE for ever.
CK_RV fault_Sign(CK_SESSION_HANDLE session, CK_BYTE* data, CK_ULONG data_len, CK_BYTE* sig,
                 CK_ULONG* sig_len) {
    if (const Control c = read_control(); c.fail[fn_C_Sign] && !session_absent(c, session)) {
        CK_ULONG len = 0;
        if (real->C_Sign(session, data, data_len, nullptr, &len) == CKR_OK) {
            std::string scratch(len, '\0');
            real->C_Sign(session, data, data_len, reinterpret_cast<CK_BYTE*>(scratch.data()), &len);
        }
    }
    return run(
        fn_C_Sign,
        [&](const Control& c) {
            if (session_absent(c, session)) return CKR_DEVICE_REMOVED;
            return real->C_Sign(session, data, data_len, sig, sig_len);
        },
        [](const Control&) { return CKR_OK; });
}

// Logs the mechanism, so that tests can see which one a library chose.
CK_RV fault_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM* mechanism, CK_OBJECT_HANDLE key) {
    char extra[32] = "";
    if (mechanism) std::snprintf(extra, sizeof extra, "mechanism=0x%lx", mechanism->mechanism);
    return run(
        fn_C_SignInit,
        [&](const Control& c) {
            return session_absent(c, session) ? CKR_DEVICE_REMOVED
                                              : real->C_SignInit(session, mechanism, key);
        },
        [](const Control&) { return CKR_OK; }, extra);
}

CK_RV load_real() {
    std::call_once(load_once, [] {
        const char* path = std::getenv("HBSD_FAULT_REAL_MODULE");
        if (!path) {
            std::fprintf(stderr, "pkcs11-fault: HBSD_FAULT_REAL_MODULE is not set\n");
            return;
        }
        real_handle = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!real_handle) {
            std::fprintf(stderr, "pkcs11-fault: %s\n", ::dlerror());
            return;
        }
        auto get =
            reinterpret_cast<CK_C_GetFunctionList>(::dlsym(real_handle, "C_GetFunctionList"));
        if (!get || get(&real) != CKR_OK || !real) {
            real = nullptr;
            return;
        }
        wrapped.version = real->version;
#define FAULT_WIRE(name) \
    wrapped.name = &Forward<decltype(wrapped.name)>::call<fn_##name, &CK_FUNCTION_LIST::name>;
        FAULT_FUNCTIONS(FAULT_WIRE)
#undef FAULT_WIRE
        wrapped.C_GetFunctionList = &C_GetFunctionList;
        wrapped.C_GetSlotList = &fault_GetSlotList;
        wrapped.C_GetSlotInfo = &fault_GetSlotInfo;
        wrapped.C_GetTokenInfo = &fault_GetTokenInfo;
        wrapped.C_OpenSession = &fault_OpenSession;
        wrapped.C_Sign = &fault_Sign;
        wrapped.C_SignInit = &fault_SignInit;
    });
    return real ? CKR_OK : CKR_GENERAL_ERROR;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST** list) {
    if (!list) return CKR_ARGUMENTS_BAD;
    if (CK_RV rv = load_real(); rv != CKR_OK) return rv;
    *list = &wrapped;
    return CKR_OK;
}
